"""`atwill up`, a server with a floating IP, then Ctrl-C or `atwill down`: the host is as
it was before — no route, rule, link, nftables table or process of the cloud is left."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill.devcloud import free_port

BIN = Path(sys.executable).parent
pytestmark = [pytest.mark.host,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                 reason="needs QEMU")]


def _ip(*args: str) -> list[dict]:
    done = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    return json.loads(done.stdout or "[]")


def _processes(state_dir: Path) -> list[str]:
    """Live processes whose command line names the state directory (VMs, dnsmasq, …)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(state_dir) in argv and proc.name != str(os.getpid()):
            found.append(argv)
    return found


def snapshot(state_dir: Path) -> dict:
    routes = sorted(json.dumps(r, sort_keys=True) for r in _ip("route", "show", "table", "all")
                    if r.get("type") not in ("local", "broadcast", "multicast"))
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {"routes": routes, "rules": sorted(json.dumps(r, sort_keys=True)
                                              for r in _ip("rule")),
            "links": sorted(link["ifname"] for link in _ip("link")),
            "nft": sorted(nft.splitlines()), "processes": _processes(state_dir)}


def wait_clean(state_dir: Path, before: dict, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while (now := snapshot(state_dir)) != before and time.monotonic() < deadline:
        time.sleep(0.5)  # processes killed a moment ago may still be exiting
    return now


class Up:
    def __init__(self, state_dir: Path, port: int) -> None:
        self.state_dir, self.port = state_dir, port
        self.log = state_dir.parent / "up.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        seen = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "atwill"), "up", "--state-dir", str(self.state_dir), "--port",
                 str(self.port)], stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 150
        while b"all-in-one cloud ready" not in self.log.read_bytes()[seen:]:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.5)

    def openstack(self, *args: str) -> str:
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(self.state_dir / "clouds.yaml"),
                   OS_CLOUD="atwill")
        done = subprocess.run([str(BIN / "openstack"), *args], capture_output=True,
                              text=True, env=env, timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def atwill(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "atwill"), *args, "--state-dir", str(self.state_dir)],
                              capture_output=True, text=True, timeout=120)

    def exited_within(self, seconds: float) -> bool:
        assert self.proc is not None
        try:
            self.proc.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    cloud = Up(tmp_path / "state", free_port())
    try:
        yield cloud
    finally:
        cloud.kill()
        if cloud.state_dir.exists():
            cloud.atwill("down", "--purge")


def test_up_then_ctrl_c_then_up_then_down_leave_the_host_as_it_was(up: Up) -> None:
    before = snapshot(up.state_dir)
    up.start()
    public = ipaddress.ip_network(
        json.loads(up.openstack("subnet", "show", "public-subnet", "-f", "json"))["cidr"])
    assert up.openstack("server", "create", "--flavor", "m1.tiny", "--image", "atwill-guest",
                        "--network", "private", "--wait", "demo", "-f", "value", "-c",
                        "status") == "ACTIVE"
    up.openstack("floating", "ip", "create", "public")
    # The host's only route into the public range is the range itself, on atwill's bridge.
    ours = [r for r in _ip("route") if r.get("dev") == "atwill-ext"]
    assert [ipaddress.ip_network(r["dst"]) for r in ours] == [public]
    assert snapshot(up.state_dir) != before

    assert up.proc is not None
    up.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert up.exited_within(20), "atwill up did not stop within 20 s of Ctrl-C"
    assert wait_clean(up.state_dir, before) == before

    up.start()  # the same cloud again: its server's VM comes back
    assert up.openstack("server", "show", "demo", "-f", "value", "-c", "name") == "demo"
    done = up.atwill("down")
    assert done.returncode == 0, done.stderr
    assert "this host is clean" in done.stdout
    assert up.exited_within(5)
    assert wait_clean(up.state_dir, before) == before
    assert (up.state_dir / "atwill.db").exists()

    done = up.atwill("down", "--purge")
    assert done.returncode == 0, done.stderr
    assert not up.state_dir.exists()
