"""The migration benchmark's baseline: the same QEMU migration by hand, between two nodes.

From a running instance's spec.json: the agent's own qemu_argv for the same guest (image,
memory, vCPUs, accelerator; a config drive carrying the same user data, which the
instance read from the metadata service through its NIC), no NIC, a new uuid and a qcow2
overlay of its own on each side. The source starts in one node's namespace; once its
console shows `marker`, the destination starts in the other (-incoming defer,
migrate-incoming on the node's overlay address, as the agent does) and the source
migrates with the agent's settings (auto-converge, 300 ms downtime limit, no bandwidth
cap), polled every 20 ms. Neither the disk mirror nor TLS: those are atwill's own costs,
which the ratios show. Both QEMUs are stopped by PID and their files removed.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..agent.hypervisor import configdrive, disks
from ..agent.hypervisor.migration import UNTHROTTLED
from ..agent.hypervisor.qmp import QMP, QMPError
from ..agent.hypervisor.spec import InstancePaths, InstanceSpec, qemu_argv
from ..lab import Lab

POLL = 0.02
TIMEOUT = 300


def _paths(root: Path, name: str) -> InstancePaths:
    # QMP's socket in /tmp/amh-*: a UNIX socket path must stay under 108 bytes.
    sockets = Path(tempfile.mkdtemp(prefix="amh-", dir="/tmp"))
    (root / "sockets").mkdir(parents=True, exist_ok=True)
    (root / "sockets" / name).write_text(str(sockets))
    paths = InstancePaths.under(root / name, sockets, str(uuid.uuid4()))
    paths.directory.mkdir(parents=True)
    paths.qmp.parent.mkdir(parents=True, exist_ok=True)
    return paths


def _start(lab: Lab, node: str, model: InstanceSpec, paths: InstancePaths,
           incoming: bool, user_data: str | None) -> InstanceSpec:
    config = None
    if user_data is not None:
        # Without a NIC the guest has no metadata service: its user data comes this way.
        config = paths.config_drive
        configdrive.build_iso(config, {"uuid": paths.directory.name, "name": "bench-hand",
                                       "hostname": "bench-hand"}, {}, user_data.encode())
    elif model.config_drive is not None:
        config = shutil.copyfile(model.config_drive, paths.config_drive)
    spec = replace(model, uuid=paths.directory.name, name="bench-hand", nics=[],
                   config_drive=config, console_log=None, volumes=[])
    assert spec.image_path is not None
    disks.create_overlay(spec.image_path, paths.disk, spec.disk_gb, spec.image_format)
    lab.exec(node, *qemu_argv(spec, paths, incoming=incoming), timeout=60)
    return spec


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (QMPError, OSError):
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"hand-made migration: {what} after {timeout:g} s")


def _stop(paths: InstancePaths) -> None:
    try:
        pid = int(paths.pidfile.read_text())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _follow(qmp_path: Path) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with QMP(qmp_path, 10) as qmp:
            state = qmp.execute("query-migrate") or {}
        if state.get("status") == "completed":
            ram = state.get("ram") or {}
            return {"downtime_ms": int(state["downtime"]), "total_ms": int(state["total-time"]),
                    "bytes": int(ram.get("transferred", 0))}
        if state.get("status") in ("failed", "cancelled"):
            raise QMPError(f"hand-made migration {state['status']}: {state.get('error-desc')}")
        time.sleep(POLL)
    raise TimeoutError(f"hand-made migration not completed after {TIMEOUT} s")


def _running(qmp_path: Path) -> str | None:
    # Once the source says "completed" the destination still loads the last pages.
    with QMP(qmp_path, 10) as qmp:
        status = qmp.execute("query-status")["status"]
    return status if status == "running" else None


def run(lab: Lab, spec_file: Path, source: str, target: str, address: str, port: int,
        root: Path, marker: str, user_data: str | None = None,
        timeout: float = 180) -> dict[str, Any]:
    """Migrate by hand a copy of the instance of spec_file from source to target
    (listening on address:port), the guest given user_data; QEMU's figures and the
    bench's own wall time."""
    model = InstanceSpec.from_json(spec_file.read_text())
    src = _paths(root, "src")
    dst = _paths(root, "dst")
    try:
        _start(lab, source, model, src, False, user_data)
        console = src.directory / "console.log"
        _wait(f"no {marker!r} on the console", lambda: marker in console.read_text(
            errors="replace"), timeout)
        _start(lab, target, model, dst, True, user_data)
        with QMP(dst.qmp, 10) as qmp:
            qmp.execute("migrate-incoming", {"uri": f"tcp:{address}:{port}"})
        with QMP(src.qmp, 10) as qmp:
            qmp.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": "auto-converge", "state": True}]})
            qmp.execute("migrate-set-parameters", {"downtime-limit": 300,
                                                   "max-bandwidth": UNTHROTTLED})
            start = time.monotonic()
            qmp.execute("migrate", {"uri": f"tcp:{address}:{port}"})
        figures = _follow(src.qmp)
        figures["wall_s"] = time.monotonic() - start
        figures["dest_status"] = _wait("the destination not running", lambda: _running(
            dst.qmp), 30)
        return figures
    finally:
        _stop(src)
        _stop(dst)
        for made in (src, dst):
            shutil.rmtree(made.qmp.parent, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
