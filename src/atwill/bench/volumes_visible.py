"""atwill bench volumes --latency, the guest's part: attach -> the disk visible in a guest.

One small guest (the busybox `atwill-guest` image, build_image) runs in a QEMU started
with the agent's own command line (hypervisor/spec.qemu_argv: machine pc, TCG, the
image's qcow2 overlay, a config drive, the serial console in a file, no NIC). Its user
data (SCRIPT) reads the kernel's log (/dev/kmsg) and, for each virtio_blk "[vdX]" line,
waits until /sys/block/vdX is there and writes `VPLUG DISK vdX <serial>` on the serial
console. Each round plugs two disks into that guest, alternating which goes first:
- "volume": a storage node's export on the loopback (agent/storage/exports.py:
  qemu-storage-daemon, TLS-PSK) hot-plugged by the agent's code (hypervisor/volumes.
  Volumes.attach: the reachability probe, object-add of the key, blockdev-add, which
  connects and does the TLS handshake, device_add at the volume's fixed slot);
- "local": a qcow2 file on this host, blockdev-add (qcow2 over file) and the same
  device_add: what a hot-plug costs without NBD, the baseline of the same run;
and takes each out again (the agent's detach for the volume: device_del, the guest's
ACPI eject, blockdev-del) before the next round, so every plug lands in the same slot
and the guest names it vdb again.

Per plug: seconds from the call to its return (device_add returned: the device exists
in QEMU) and to the console line being in the console file (the bench polls the file
every millisecond): the guest's ACPI hot-plug handler, the PCI scan, virtio_blk's probe
(for the volume: its first reads over NBD, the partition scan) and the sysfs node, plus
the few bytes of serial output. Not in it: the controller's part (the API call, the
desired state reaching the node by its long-poll, the converge that calls attach),
which this bench does not run.

Measured 2026-12-07 on the 2-core build machine (`atwill bench volumes --latency`, TCG
guest, 12 plugs of each kind, other helpers' work on the machine): the volume is visible
in the guest after a median 181.8 ms (p95 = max of 12: 261.7 ms; in QEMU after 13.8 ms),
the local qcow2 after 163.8 ms (p95 272.4 ms; in QEMU after 6.2 ms): 1.11x the local
plug's median. About 150 ms of either is the TCG guest's own hot-plug work (ACPI event,
PCI scan, virtio_blk probe); the NBD connection and TLS handshake add ~8 ms in QEMU and
the volume's first reads over NBD the rest. The API's part is not measured here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agent.hypervisor import configdrive, disks
from ..agent.hypervisor.qmp import QMP, QMPError
from ..agent.hypervisor.spec import InstancePaths, InstanceSpec, qemu_argv
from ..agent.hypervisor.volumes import Volumes
from ..agent.storage.exports import Exports
from ..core import volume_devices as vd
from ..guest.build import build_image
from ..hostlib.run import run

POLL = 0.001
BOOT_TIMEOUT = 120.0
PLUG_TIMEOUT = 60.0
UNPLUG_TIMEOUT = 30.0
SERIAL_CHARS = 20  # virtio-blk gives the guest at most 20 bytes of serial
VOLUME_SLOT = vd.slot_of("/dev/vdb")
LOCAL_ID = "local0"

# The guest's user data: a console line per virtio disk the kernel adds.
SCRIPT = r"""#!/bin/sh
# atwill bench volumes --latency: report each new virtio disk on the console.
say() { echo "VPLUG $*" > /dev/console; }
cat /dev/kmsg | {
  say READY
  while read -r line; do
    case "$line" in *virtio_blk*"[vd"*"]"*) ;; *) continue;; esac
    name=${line#*\[}; name=${name%%\]*}
    while [ ! -e "/sys/block/$name/serial" ]; do :; done
    say "DISK $name $(cat "/sys/block/$name/serial")"
  done
}
"""


@dataclass
class Guest:
    """The running guest: its QEMU's PID, QMP socket and console file."""

    pid: int
    qmp: Path
    console: Path

    def console_from(self, offset: int) -> str:
        with open(self.console, "rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def console_size(self) -> int:
        try:
            return self.console.stat().st_size
        except FileNotFoundError:
            return 0

    def wait_line(self, needle: str, offset: int, timeout: float) -> float:
        """monotonic() when needle is first seen in the console past offset."""
        deadline = time.monotonic() + timeout
        while True:
            if needle in self.console_from(offset):
                return time.monotonic()
            if time.monotonic() > deadline:
                tail = self.console_from(max(0, self.console_size() - 1500))
                raise RuntimeError(f"the guest did not print {needle!r} within {timeout:.0f} s;"
                                   f" console ends:\n{tail}")
            time.sleep(POLL)

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def boot(tmp: Path) -> Guest:
    """The guest as the agent starts one (no NIC: the config drive carries the user data)."""
    image = build_image().path
    uuid = "0b7c2a5e-beac-4c00-8000-000000000001"
    paths = InstancePaths.under(tmp / "instances", tmp, uuid)
    paths.directory.mkdir(parents=True)
    disks.create_overlay(image, paths.disk, 1)
    meta = configdrive.meta_data(uuid, "vplug", "vplug", "bench")
    configdrive.build_iso(paths.config_drive, meta, {"links": [], "networks": [],
                                                     "services": []}, SCRIPT.encode())
    spec = InstanceSpec(uuid=uuid, name="vplug", vcpus=1, memory_mb=256, disk_gb=1,
                        image_path=image, config_drive=paths.config_drive, accel="tcg")
    run(qemu_argv(spec, paths), timeout=60)
    guest = Guest(int(paths.pidfile.read_text().strip()), paths.qmp, paths.console_log)
    try:
        guest.wait_line("VPLUG READY", 0, BOOT_TIMEOUT)
    except BaseException:
        guest.stop()
        raise
    return guest


def _local_blockdev(path: Path) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": "loc-" + LOCAL_ID,
            "file": {"driver": "file", "filename": str(path)},
            "cache": {"direct": True, "no-flush": False}}


def _local_device() -> dict[str, Any]:
    return {"driver": "virtio-blk-pci", "id": "dev-" + LOCAL_ID, "drive": "loc-" + LOCAL_ID,
            "serial": "bench-local-disk", "addr": f"{vd.slot_of('/dev/vdc'):#x}"}


def _gone(qmp_path: Path, device: str, node: str) -> None:
    """device_del and, once the guest has let go, blockdev-del."""
    with QMP(qmp_path, 5.0) as qmp:
        qmp.execute("device_del", {"id": device})
    deadline = time.monotonic() + UNPLUG_TIMEOUT
    while True:
        with QMP(qmp_path, 5.0) as qmp:
            try:
                qmp.execute("blockdev-del", {"node-name": node})
                return
            except QMPError:
                pass  # still in use by the device
        if time.monotonic() > deadline:
            raise RuntimeError(f"the guest did not release {device}")
        time.sleep(0.05)


class Plugs:
    """The two kinds of plug into one guest, each timed to QEMU and to the guest."""

    def __init__(self, guest: Guest, tmp: Path) -> None:
        self.guest, self.tmp = guest, tmp
        self.exports = Exports(tmp / "exports", tmp / "none", tmp / "none", tmp / "none")
        self.volumes = Volumes(guest.qmp, keys=tmp / "keys")
        self.served: list[str] = []
        self.local = tmp / "local.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.local), "1G"])

    def volume(self, index: int) -> tuple[float, float]:
        vid = f"{index:08x}-1a7e-4c00-8000-0b7c2a5e0000"
        key, identity = secrets.token_hex(32), f"atwill-att-vplug{index}"
        image = self.tmp / f"vol-{index}.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"])
        export = self.exports.ensure(vid, "bench", "bench", "127.0.0.1", image,
                                     (f"{identity}:{key}",))
        self.served.append(vid)
        volume = vd.Volume(volume_id=vid, host="127.0.0.1", port=export.port, export=vid,
                           serial=vid, psk_identity=identity, psk_key=key, slot=VOLUME_SLOT)
        offset = self.guest.console_size()
        started = time.monotonic()
        self.volumes.attach(volume)
        in_qemu = time.monotonic()
        seen = self.guest.wait_line(f" {vid[:SERIAL_CHARS]}", offset, PLUG_TIMEOUT)
        self.volumes.detach(vd.device_id(vid)[len(vd.DEVICE_PREFIX):])
        self.exports.revoke(vid, "bench")
        self.served.remove(vid)
        image.unlink()
        return in_qemu - started, seen - started

    def local_disk(self) -> tuple[float, float]:
        offset = self.guest.console_size()
        started = time.monotonic()
        with QMP(self.guest.qmp, 5.0) as qmp:
            qmp.execute("blockdev-add", _local_blockdev(self.local))
            qmp.execute("device_add", _local_device())
        in_qemu = time.monotonic()
        seen = self.guest.wait_line(" bench-local-disk", offset, PLUG_TIMEOUT)
        _gone(self.guest.qmp, "dev-" + LOCAL_ID, "loc-" + LOCAL_ID)
        return in_qemu - started, seen - started

    def close(self) -> None:
        for vid in self.served:
            self.exports.revoke(vid, "bench")


def stats(values: list[float]) -> dict[str, float]:
    """min, median, p95 (nearest rank) and max, in milliseconds."""
    ordered = sorted(values)
    rank = max(0, -(-95 * len(ordered) // 100) - 1)
    return {"min_ms": round(ordered[0] * 1000, 1),
            "median_ms": round(statistics.median(ordered) * 1000, 1),
            "p95_ms": round(ordered[rank] * 1000, 1), "max_ms": round(ordered[-1] * 1000, 1)}


def visible_latency(rounds: int = 10) -> dict[str, Any]:
    """Volume and local-qcow2 hot-plugs into one guest, alternating; the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="atwill-bench-vplug-"))
    guest = plugs = None
    times: dict[str, dict[str, list[float]]] = {
        kind: {"qemu": [], "guest": []} for kind in ("volume", "local")}
    try:
        booted = time.monotonic()
        guest = boot(tmp)
        boot_s = time.monotonic() - booted
        plugs = Plugs(guest, tmp)
        for index in range(rounds):
            order = ("volume", "local") if index % 2 == 0 else ("local", "volume")
            for kind in order:
                qemu_s, guest_s = plugs.volume(index) if kind == "volume" else plugs.local_disk()
                times[kind]["qemu"].append(qemu_s)
                times[kind]["guest"].append(guest_s)
    finally:
        if plugs is not None:
            plugs.close()
        if guest is not None:
            guest.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"rounds": rounds, "boot_s": round(boot_s, 1),
                           "machine": "pc, TCG, 1 vCPU, busybox guest (Linux 6.1)",
                           "transport": "loopback, TLS-PSK"}
    for kind, got in times.items():
        out[kind] = {"in_qemu": stats(got["qemu"]), "in_guest": stats(got["guest"])}
    out["ratio_median"] = round(statistics.median(times["volume"]["guest"])
                                / statistics.median(times["local"]["guest"]), 2)
    return out


def report(figs: dict[str, Any]) -> str:
    lines = [f"attach -> disk visible in the guest ({figs['machine']}, {figs['rounds']} "
             f"plugs each, alternating; guest booted in {figs['boot_s']} s):"]
    for kind, label in (("volume", "volume (NBD, TLS-PSK)"), ("local", "local qcow2")):
        q, g = figs[kind]["in_qemu"], figs[kind]["in_guest"]
        lines.append(f"  {label:>22}: in QEMU median {q['median_ms']} ms (p95 {q['p95_ms']}),"
                     f" in the guest median {g['median_ms']} ms (p95 {g['p95_ms']}, "
                     f"min {g['min_ms']}, max {g['max_ms']})")
    lines.append(f"  volume / local (guest-visible medians): {figs['ratio_median']}")
    return "\n".join(lines)


def main(rounds: int = 10) -> dict[str, Any]:
    figs = visible_latency(rounds)
    print(report(figs))
    return figs
