"""One VM started by hand in a node's namespace: what the agent does, without atwill around it.

From a running instance's spec.json it makes an equivalent spec (same image in the
node's cache, vCPUs, memory, accelerator, hw_* properties, a copy of its config drive;
a new uuid, MAC and tap in the same bridge), then times: the qcow2 overlay (the
agent's disks.create_overlay), the tap (`ip tuntap`, MTU, bridge, up), the agent's
qemu_argv run as is (-daemonize, pidfile, QMP socket), and QMP's query-status until
"running". Then it stops that QEMU by its pidfile's PID and removes what it made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..lab import Lab

SCRIPT = r"""
import json, os, shutil, signal, subprocess, sys, time, uuid
from dataclasses import replace
from pathlib import Path
from atwill.agent.hypervisor import disks
from atwill.agent.hypervisor.qmp import QMP, QMPError
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec, Nic, qemu_argv

call = json.loads(sys.argv[1])
model = InstanceSpec.from_json(Path(call["spec"]).read_text())
root = Path(call["dir"])
paths = InstancePaths.under(root / "instances", root / "qmp", str(uuid.uuid4()))
paths.directory.mkdir(parents=True)
paths.qmp.parent.mkdir(parents=True, exist_ok=True)
nics = [Nic(mac=call["mac"], tap=call["tap"], mtu=n.mtu) for n in model.nics[:1]]
config = None
if model.config_drive is not None:
    config = shutil.copyfile(model.config_drive, paths.config_drive)
spec = replace(model, uuid=paths.directory.name, name="bench-hand", nics=nics,
               config_drive=config, console_log=None)
argv = qemu_argv(spec, paths)
times = {}
start = time.monotonic()
try:
    disks.create_overlay(spec.image_path, paths.disk, spec.disk_gb, spec.image_format)
    times["disk"] = time.monotonic() - start
    for nic in nics:
        subprocess.run(["ip", "tuntap", "add", "dev", nic.tap, "mode", "tap"], check=True)
        subprocess.run(["ip", "link", "set", "dev", nic.tap, "mtu", str(nic.mtu), "master",
                        call["bridge"], "up"], check=True)
    times["tap"] = time.monotonic() - start
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    times["daemonized"] = time.monotonic() - start
    while True:
        try:
            with QMP(paths.qmp, 5) as qmp:
                if qmp.execute("query-status")["status"] == "running":
                    break
        except QMPError:
            pass
        if time.monotonic() - start > 60:
            raise TimeoutError("QEMU by hand: no 'running' from QMP in 60 s")
        time.sleep(0.01)
    times["total"] = time.monotonic() - start
    times["qemu"] = times["total"] - times["tap"]
finally:
    pid = int(paths.pidfile.read_text()) if paths.pidfile.exists() else None
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
    for nic in nics:
        subprocess.run(["ip", "link", "del", "dev", nic.tap], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
times["argv"] = argv
print(json.dumps(times))
"""


def run(lab: Lab, node: str, spec: Path, directory: Path, tap: str, mac: str) -> dict[str, Any]:
    """Start and stop one VM by hand on `node`, like the instance whose spec.json is `spec`."""
    holder_tap = json.loads(spec.read_text())["nics"][0]["tap"]
    link = json.loads(lab.exec(node, "ip", "-j", "link", "show", "dev", holder_tap).stdout)
    call = {"spec": str(spec), "dir": str(directory), "tap": tap, "mac": mac,
            "bridge": link[0]["master"]}
    out = lab.exec(node, sys.executable, "-c", SCRIPT, json.dumps(call), timeout=120).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
