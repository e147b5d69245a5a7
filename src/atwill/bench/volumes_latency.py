"""atwill bench volumes --latency: how long an attach takes to reach the guest's QEMU, and
how long a storage node takes to make a volume from a 1 GiB image against a plain
`qemu-img convert` of the same image on the same disk (same run: the ratio).

Attach: a storage node's export (agent/storage/exports.py: qemu-storage-daemon, TLS with
the attachment's pre-shared key) on the loopback, and a QEMU started as the agent starts
one (machine pc, TCG, no guest OS: SeaBIOS finds nothing to boot and waits). Each round
hot-plugs one more volume with the agent's own code (hypervisor/volumes.Volumes.attach:
the reachability probe, object-add of the key, blockdev-add, which connects and does the
TLS handshake, and device_add), then polls QMP every millisecond until QEMU lists the
device: the figure is from the call to the device being present in QEMU. What a guest
adds (its ACPI hot-plug handler, the virtio-blk driver's probe, udev) is not in it, nor
the controller's part (API call, desired state reaching the node: the agents' desired
state is long-polled, so that is one round trip plus a converge).

Attach -> visible in the guest (volumes_visible.py): the same hot-plug into a booted
busybox guest, timed until the guest's kernel has the disk (/sys/block/vdX, reported on
its serial console), against a local qcow2 hot-plugged into the same guest in the same
run. Measured 2026-12-07 (2-core machine, TCG guest, 12 plugs each, alternating):
volume visible after a median 181.8 ms (p95 261.7), local qcow2 163.8 ms (p95 272.4),
ratio 1.11; the same run's attach -> device present in QEMU above: 11.3 ms.

Create from image: a 1 GiB qcow2 image, every cluster written (nothing sparse to skip),
made into a 1 GiB volume by the storage node's own code (agent/storage/volumes.py
VolumeStore.create_from_image: the image's format and virtual size checked, qemu-img
convert to a qcow2 under a partial name, its size checked, renamed) against `qemu-img
convert -f qcow2 -O qcow2` of the same file, alternately, best of the rounds each. The
image's download from the controller to the storage node is not in it.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from ..agent.hypervisor.qmp import QMP
from ..agent.hypervisor.volumes import Volumes
from ..agent.storage.exports import Exports
from ..agent.storage.volumes import VolumeStore
from ..core import volume_devices as vd
from ..hostlib.run import run
from . import volumes_visible

GIB = 1 << 30
POLL = 0.001
IMAGE_TIMEOUT = 1800
SLOTS = 14  # vdb..vdo: a fixed PCI slot each (volume_devices.slot_of)


def _volume_id(index: int) -> str:
    return f"{index:08x}-1a7e-4c00-8000-0b7c2a5e0000"  # the leading digits name it in QEMU


def _start_qemu(tmp: Path) -> tuple[subprocess.Popen, Path]:
    sock = tmp / "qmp.sock"
    proc = subprocess.Popen(
        ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "128", "-nodefaults",
         "-no-user-config", "-display", "none",
         "-qmp", f"unix:{sock},server=on,wait=off"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"QEMU did not start: {proc.stderr.read()[-300:]!r}"
                               if proc.stderr else "QEMU did not start")
        time.sleep(0.05)
    return proc, sock


def _present(qmp: QMP, device: str) -> bool:
    found = qmp.execute("qom-list", {"path": "/machine/peripheral"})
    return any(entry.get("name") == device for entry in found)


def attach_latency(rounds: int) -> dict[str, Any]:
    """Seconds from the agent's attach call to QEMU listing the device, per round."""
    tmp = Path(tempfile.mkdtemp(prefix="atwill-bench-attach-"))
    exports = Exports(tmp / "exports", tmp / "none", tmp / "none", tmp / "none")
    served: list[str] = []
    proc = None
    try:
        proc, sock = _start_qemu(tmp)
        plug = Volumes(sock, keys=tmp / "keys")
        took, connect = [], []
        for index in range(rounds):
            vid, key = _volume_id(index), secrets.token_hex(32)
            identity = f"atwill-att-bench{index}"
            image = tmp / f"{index}.qcow2"
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"])
            export = exports.ensure(vid, "bench", "bench", "127.0.0.1", image,
                                    (f"{identity}:{key}",))
            served.append(vid)
            volume = vd.Volume(volume_id=vid, host="127.0.0.1", port=export.port,
                               export=vid, serial=vid, psk_identity=identity, psk_key=key,
                               slot=vd.slot_of(f"/dev/vd{'bcdefghijklmno'[index % SLOTS]}"))
            started = time.monotonic()
            plug.attach(volume)
            returned = time.monotonic()
            with QMP(sock, 5.0) as qmp:
                while not _present(qmp, volume.device_id):
                    time.sleep(POLL)
            took.append(time.monotonic() - started)
            connect.append(returned - started)
        return {"rounds": rounds, "device_present_s": _stats(took),
                "attach_call_s": _stats(connect), "machine": "pc, TCG, no guest OS",
                "transport": "loopback, TLS-PSK"}
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(30)
        for vid in served:
            exports.revoke(vid, "bench")
        shutil.rmtree(tmp, ignore_errors=True)


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"min": round(ordered[0], 4), "median": round(ordered[len(ordered) // 2], 4),
            "max": round(ordered[-1], 4)}


def _timed(action) -> float:  # noqa: ANN001 - a no-argument callable
    started = time.monotonic()
    action()
    return time.monotonic() - started


def create_from_image(rounds: int, directory: Path | None = None) -> dict[str, Any]:
    """Best seconds of the storage node's create-from-image and of a plain convert."""
    tmp = Path(tempfile.mkdtemp(prefix="atwill-bench-fromimage-", dir=directory))
    try:
        image = tmp / "image.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1G"])
        run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1G", str(image)],
            timeout=IMAGE_TIMEOUT)
        store = VolumeStore(tmp / "store")
        store.prepare()
        node, plain = [], []
        for index in range(rounds):
            vid = _volume_id(index)
            node.append(_timed(lambda v=vid: store.create_from_image(v, 1, image, "qcow2")))
            store.delete_volume(vid)
            target = tmp / f"plain-{index}.qcow2"
            plain.append(_timed(lambda t=target: run(
                ["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", str(image),
                 str(t)], timeout=IMAGE_TIMEOUT)))
            target.unlink()
        best_node, best_plain = min(node), min(plain)
        return {"image": "qcow2, 1 GiB, fully allocated", "rounds": rounds,
                "volume_s": round(best_node, 2), "qemu_img_convert_s": round(best_plain, 2),
                "ratio": round(best_node / best_plain, 2)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(rounds: int = 3) -> dict[str, Any]:
    attach = attach_latency(min(max(rounds * 3, 10), SLOTS))
    print(f"attach -> device present in QEMU: median {attach['device_present_s']['median']} s "
          f"(min {attach['device_present_s']['min']}, max {attach['device_present_s']['max']}"
          f", {attach['rounds']} rounds)")
    visible = volumes_visible.main(max(rounds * 4, 10))
    made = create_from_image(rounds)
    print(f"volume from a 1 GiB image: {made['volume_s']} s, qemu-img convert "
          f"{made['qemu_img_convert_s']} s, ratio {made['ratio']}")
    return {"attach": attach, "attach_visible_in_guest": visible, "create_from_image": made}
