"""The lab's virtual BMC answers the real fence_ipmilan over IPMI 2.0 (lanplus)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.devcloud import free_port
from atwill.lab import bmc

pytestmark = pytest.mark.skipif(shutil.which("fence_ipmilan", path="/usr/sbin:/sbin") is None,
                                reason="fence-agents is not installed (scripts/install)")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A memory-only virtual BMC on loopback: (port, password)."""
    port = free_port()
    proc = subprocess.Popen(bmc.command("--memory", "--dir", str(tmp_path), "--address",
                                        "127.0.0.1", "--port", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not (tmp_path / "bmc-password").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield port, bmc.password(tmp_path)
    finally:
        proc.terminate()
        proc.wait(10)


def ipmilan(port: int, password: str, action: str) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/sbin/fence_ipmilan", "--ip", "127.0.0.1", "--ipport",
                           str(port), "--username", bmc.USERNAME, "--password", password,
                           "--lanplus", "-o", action], capture_output=True, text=True,
                          timeout=60)


def test_fence_ipmilan_status_off_on(server: tuple[int, str]) -> None:
    port, password = server
    first = ipmilan(port, password, "status")
    assert first.returncode == 0 and "Status: ON" in first.stdout, first.stderr
    assert ipmilan(port, password, "off").returncode == 0
    off = ipmilan(port, password, "status")
    assert off.returncode == 2 and "Status: OFF" in off.stdout
    assert ipmilan(port, password, "on").returncode == 0
    assert "Status: ON" in ipmilan(port, password, "status").stdout


def test_a_wrong_password_is_refused(server: tuple[int, str]) -> None:
    port, _ = server
    refused = ipmilan(port, "not-the-password", "status")
    assert refused.returncode == 1 and "Status:" not in refused.stdout


def test_fence_options_point_at_the_nodes_bmc(tmp_path: Path) -> None:
    options = bmc.fence_options(tmp_path, 12)
    assert options == {"ip": "127.0.1.12", "ipport": "623", "username": "admin",
                       "password": bmc.password(tmp_path), "lanplus": "1"}
    assert (tmp_path / "bmc-password").stat().st_mode & 0o777 == 0o600
    assert len(options["password"]) >= 16
