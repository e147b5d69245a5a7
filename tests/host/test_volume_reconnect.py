"""A compute node's QEMU keeps its NBD volume when the storage node's export daemon dies
and the storage agent starts it again: the same port and key (exports.py), and QEMU's
NBD client reconnects (reconnect-delay, core/volume_devices.py); a request made while
the export is down waits for it instead of failing. A QEMU with no guest (-machine
none) holds the volume with the very options the agent gives it, and HMP's qemu-io does
the I/O a guest would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from atwill import pki
from atwill.agent.hypervisor.qmp import QMP
from atwill.agent.hypervisor.spec import QEMU
from atwill.agent.storage.reconcile import StorageManager
from atwill.core import volume_devices as vd

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None,
                                 reason="needs qemu-storage-daemon"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PORTS = range(10960, 10970)
NODE = "node-a"
IDENTITY, KEY = "atwill-att-reconnect", "c3" * 32
VOLUME_ID = str(uuid.uuid4())


@pytest.fixture
def root() -> Iterator[Path]:
    # Short: the exports' QMP socket paths must stay within a UNIX socket's 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="nbdrc-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _manager(root: Path) -> StorageManager:
    ca = root / "ca"
    pki.create_ca(ca)
    key, csr = pki.make_key_and_csr("stor1")
    cert, _ = pki.sign_client_csr(ca, csr, "stor1")
    (root / "key.pem").write_bytes(key)
    (root / "cert.pem").write_bytes(cert)
    return StorageManager(root / "volumes", ca / "ca.pem", root / "cert.pem",
                          root / "key.pem", lambda source, dest: None, PORTS)


def _converge(manager: StorageManager, vid: str) -> dict[str, int]:
    """The storage agent's converge: the volume exported to NODE for the attachment's key."""
    manager.converge({"volumes": [{
        "id": vid, "size_gb": 1, "format": "qcow2", "source": None, "snapshots": [],
        "exports": [{"node_id": NODE, "client_cn": NODE,
                     "psk": [f"{IDENTITY}:{KEY}"]}]}]}, "127.0.0.1")
    assert manager.wait(60)
    return manager.report()[vid]["exports"][NODE]


def _qemu(root: Path, volume: vd.Volume) -> subprocess.Popen:
    """QEMU holding the volume as the agent starts an instance with it (no guest)."""
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    (keys / vd.PSK_FILE).write_text(vd.psk_line(volume))
    # HMP's qemu-io prints to QEMU's stdout: line-buffered, each answer is in the file
    # once its command returns.
    argv = ["stdbuf", "-oL", QEMU, "-machine", "none", "-nodefaults", "-display", "none",
            "-S", "-qmp", f"unix:{root / 'qmp.sock'},server=on,wait=off",
            "-object", json.dumps(vd.psk_object(volume, str(keys))),
            "-blockdev", json.dumps(vd.blockdev(volume))]
    with (root / "qemu.out").open("wb") as out, (root / "qemu.err").open("wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
    deadline = time.monotonic() + 30
    while not (root / "qmp.sock").exists():
        assert proc.poll() is None, (root / "qemu.err").read_text()
        assert time.monotonic() < deadline, "QEMU did not start"
        time.sleep(0.05)
    return proc


def _io(root: Path, command: str) -> str:
    """One qemu-io command on the volume's block node in QEMU; what it printed."""
    printed = root / "qemu.out"
    before = printed.stat().st_size
    with QMP(root / "qmp.sock", timeout=60) as qmp:
        answer = qmp.execute("human-monitor-command", {
            "command-line": f'qemu-io {vd.node_name(VOLUME_ID)} "{command}"'})
    with printed.open("rb") as out:
        out.seek(before)
        return str(answer) + out.read().decode(errors="replace")


def _fine(printed: str, verb: str) -> bool:
    """Whether qemu-io did the 4 KiB it was asked (and the pattern it read matched)."""
    return f"{verb} 4096/4096 bytes" in printed and "failed" not in printed


def test_qemu_reconnects_when_the_export_daemon_restarts(root: Path) -> None:
    manager = _manager(root)
    served = _converge(manager, VOLUME_ID)
    volume = vd.Volume.from_desired({
        "volume_id": VOLUME_ID, "host": served["host"], "port": served["port"],
        "psk": {"identity": IDENTITY, "key": KEY}})
    qemu = _qemu(root, volume)
    try:
        assert _fine(_io(root, "write -P 0x61 0 4k"), "wrote")
        # Flushed, as a guest does (its disk has a write cache): a daemon killed before
        # the flush may lose the write, as a disk losing power loses its cache (qcow2's
        # cluster tables are written back at the flush; checked, the read finds zeros).
        assert "failed" not in _io(root, "flush")
        daemon = manager.exports.running(next(iter(manager.exports.records().values())))
        assert daemon is not None
        os.kill(daemon, signal.SIGKILL)  # the export dies as in a crash
        deadline = time.monotonic() + 10
        while manager.exports.running(next(iter(manager.exports.records().values()))):
            assert time.monotonic() < deadline, "the killed daemon stays"
            time.sleep(0.05)
        # A read asked for while nothing serves the export waits for it ...
        outcome: list[str] = []
        reader = threading.Thread(target=lambda: outcome.append(
            _io(root, "read -P 0x61 0 4k")))
        reader.start()
        reader.join(1.0)  # in flight before the export comes back, and not failed
        assert reader.is_alive() and not outcome
        # ... until the agent's next converge starts the daemon again, on the same port.
        assert _converge(manager, VOLUME_ID) == served
        reader.join(vd.RECONNECT_DELAY + 20)
        assert outcome and _fine(outcome[0], "read"), outcome
        assert _fine(_io(root, "write -P 0x62 4k 4k"), "wrote")
        assert _fine(_io(root, "read -P 0x62 4k 4k"), "read")
    finally:
        qemu.send_signal(signal.SIGTERM)
        qemu.wait(30)
        manager.converge({"volumes": []}, "127.0.0.1")
        assert manager.wait(60)
