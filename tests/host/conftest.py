"""Root-only fixtures: network namespaces on one bridge, removed even when a test fails."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

from atwill.hostlib.run import run

# Runs in a namespace: builds the overlay object and spec from JSON, calls one method, and
# prints the status, so tests drive the real classes where the real interfaces live.
CALL = """
import dataclasses, json, sys
from importlib import import_module
from pathlib import Path

def build(cls, values):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.name == "peers":
            from atwill.hostlib.overlay.base import Peer
            value = [Peer(**peer) for peer in value]
        elif "Path" in str(f.type) and value is not None:
            value = Path(value)
        kwargs[f.name] = value
    return cls(**kwargs)

call = json.loads(sys.argv[1])
module = import_module(call["module"])
overlay = getattr(module, call["cls"])(Path(call["directory"]), call["ifname"])
if call["method"] == "apply":
    spec_module = import_module(call["spec_module"])
    overlay.apply(build(getattr(spec_module, call["spec_cls"]), call["spec"]))
elif call["method"] == "teardown":
    overlay.teardown()
print(json.dumps(overlay.status()))
"""


@dataclass
class Host:
    """A network namespace standing for one machine, with its underlay address."""

    name: str
    address: str

    def run(self, *args: str, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace."""
        return run(["ip", "netns", "exec", self.name, *args], check=check, timeout=timeout)

    def call(self, module: str, cls: str, directory: Path, ifname: str, method: str,
             spec: Any = None) -> dict[str, Any]:
        """Call method on an overlay object built in the namespace; return its status()."""
        payload: dict[str, Any] = {"module": module, "cls": cls, "directory": str(directory),
                                   "ifname": ifname, "method": method}
        if spec is not None:
            payload.update(spec_module=type(spec).__module__, spec_cls=type(spec).__name__,
                           spec=json.loads(json.dumps(asdict(spec), default=str)))
        done = self.run(sys.executable, "-c", CALL, json.dumps(payload))
        status: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return status

    def ping(self, address: str, within: float = 0.0) -> bool:
        """Whether address answers a ping, retrying for `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            if self.run("ping", "-c1", "-W1", "-n", address, check=False).returncode == 0:
                return True
            if time.monotonic() >= deadline:
                return False

    def has_link(self, ifname: str) -> bool:
        """Whether the namespace has an interface called ifname."""
        return self.run("ip", "link", "show", "dev", ifname, check=False).returncode == 0


@pytest.fixture
def hosts(request: pytest.FixtureRequest) -> Iterator[Callable[[int], list[Host]]]:
    """make(n): n namespaces (awt-ov-<run>-<i>) on one bridge living in the first."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tag = uuid.uuid4().hex[:6]
    created: list[Host] = []

    def make(count: int) -> list[Host]:
        for index in range(count):
            host = Host(f"awt-ov-{tag}-{index}", f"192.0.2.{index + 1}")
            run(["ip", "netns", "add", host.name])
            created.append(host)
            host.run("ip", "link", "set", "lo", "up")
        hub = created[0]
        hub.run("ip", "link", "add", "br0", "type", "bridge")
        hub.run("ip", "addr", "add", f"{hub.address}/24", "dev", "br0")
        hub.run("ip", "link", "set", "br0", "up")
        for index, host in enumerate(created[1:], start=1):
            port = f"port{index}"
            hub.run("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                    "netns", host.name)
            hub.run("ip", "link", "set", port, "master", "br0", "up")
            host.run("ip", "addr", "add", f"{host.address}/24", "dev", "eth0")
            host.run("ip", "link", "set", "eth0", "up")
        return created

    try:
        yield make
    finally:
        for host in created:
            _kill_everything_in(host.name)
            run(["ip", "netns", "del", host.name], check=False)


def _kill_everything_in(netns: str) -> None:
    # Every process in our uniquely named namespace was started by this test.
    pids = run(["ip", "netns", "pids", netns], check=False).stdout.split()
    for pid in map(int, pids):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = run(["ip", "netns", "pids", netns], check=False).stdout.split()
        time.sleep(0.02)


@pytest.fixture
def wg_names() -> Iterator[list[str]]:
    """Interface names a test used; their wireguard-go sockets are removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        Path(f"/var/run/wireguard/{name}.sock").unlink(missing_ok=True)
