"""The README's first command, in a throwaway network namespace: `atwill up`, then a VM.

`atwill up` runs the controller and a local agent on one host; here that host is a
namespace of its own, so the test changes nothing on the machine's own networking.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


@pytest.fixture
def namespace() -> str:
    name = "awt-up-" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
        for pid in out.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_up_then_a_vm_with_its_ready_line(namespace: str) -> None:
    state = Path(tempfile.mkdtemp(prefix="atwill-up-"))
    log = open(state.parent / (state.name + ".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(["ip", "netns", "exec", namespace, str(BIN / "atwill"), "up",
                             "--state-dir", str(state), "--port", "8686"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(state / "clouds.yaml"), OS_CLOUD="atwill")

    def openstack(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", namespace, str(BIN / "openstack"),
                               *args], capture_output=True, text=True, env=env, timeout=300)

    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            images = openstack("image", "list", "-f", "json")
            hypervisors = openstack("hypervisor", "list", "-f", "json")
            if images.returncode == 0 and hypervisors.returncode == 0 and any(
                    i["Name"] == "atwill-guest" and i["Status"] == "active"
                    for i in json.loads(images.stdout)) and json.loads(hypervisors.stdout):
                break
            time.sleep(2)
        else:
            raise AssertionError("atwill up never got ready:\n"
                                 + Path(log.name).read_text()[-3000:])
        made = openstack("server", "create", "--flavor", "m1.small", "--image",
                         "atwill-guest", "--network", "private", "--wait", "demo",
                         "-f", "json")
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["status"] == "ACTIVE"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            console = openstack("console", "log", "show", "demo").stdout
            if "atwill-guest ready:" in console:
                break
            time.sleep(3)
        assert "atwill-guest ready:" in console, console[-2000:]
        deleted = openstack("server", "delete", "--wait", "demo")
        assert deleted.returncode == 0, deleted.stderr
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(state, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)
