"""The storage node with real qemu-img and qemu-storage-daemon: volumes and TLS exports.

A cluster CA issues certificates to a storage node and to nodes A and B as the controller
does; another CA issues one more. Only node A, the export's client, reads and writes.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill import pki
from atwill.agent.storage.reconcile import StorageManager
from atwill.agent.storage.volumes import GIB

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None,
                                 reason="needs qemu-storage-daemon"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PORTS = range(10950, 10960)


def _node(root: Path, ca_dir: Path, name: str, trust: bytes | None = None) -> Path:
    """A directory as QEMU's tls-creds-x509 reads it (client side) for the node name."""
    key, csr = pki.make_key_and_csr(name)
    cert, _ = pki.sign_client_csr(ca_dir, csr, name)
    directory = root / f"{name}-{ca_dir.name}"
    directory.mkdir(mode=0o700)
    (directory / "client-key.pem").write_bytes(key)
    (directory / "client-cert.pem").write_bytes(cert)
    (directory / "ca-cert.pem").write_bytes(trust or (ca_dir / "ca.pem").read_bytes())
    return directory


class Cloud:
    """A storage node's manager and the client credentials of nodes A, B and a stranger."""

    def __init__(self, root: Path) -> None:
        self.root = root
        cluster, other = root / "ca", root / "other-ca"
        pki.create_ca(cluster)
        pki.create_ca(other)
        storage = _node(root, cluster, "stor1")
        self.a = _node(root, cluster, "node-a")
        self.b = _node(root, cluster, "node-b")
        # The stranger trusts the cluster CA too, so it is the server that refuses it.
        both = (cluster / "ca.pem").read_bytes() + (other / "ca.pem").read_bytes()
        self.stranger = _node(root, other, "node-a", trust=both)
        self.images: dict[str, Path] = {}
        self.manager = self.make_manager(storage)

    def make_manager(self, storage: Path) -> StorageManager:
        return StorageManager(self.root / "volumes", storage / "ca-cert.pem",
                              storage / "client-cert.pem", storage / "client-key.pem",
                              self.fetch, PORTS)

    def fetch(self, source: dict[str, Any], dest: Path) -> None:
        shutil.copyfile(self.images[source["id"]], dest)

    def converge(self, volumes: list[dict[str, Any]]) -> dict[str, Any]:
        self.manager.converge({"volumes": volumes}, "127.0.0.1")
        assert self.manager.wait(120)
        return self.manager.report()


def new_cloud(prefix: str) -> Iterator[Cloud]:
    """A fixture's body: a Cloud under a new directory in /tmp, left with no volume and
    no export, then removed."""
    # Short: the exports' QMP socket paths must stay within a UNIX socket's 108 bytes.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    made = Cloud(root)
    try:
        yield made
    finally:
        made.converge([])
        assert made.manager.exports.records() == {}
        shutil.rmtree(root)


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    yield from new_cloud("stor-")


def vol(ident: str, size_gb: int = 1, source: dict[str, Any] | None = None,
        snapshots: list[str] | None = None, exports: list[dict[str, str]] | None = None
        ) -> dict[str, Any]:
    return {"id": ident, "size_gb": size_gb, "format": "qcow2", "source": source,
            "snapshots": snapshots or [], "exports": exports or []}


def qemu_io(image: Path, *commands: str, fmt: str = "qcow2",
            shared: bool = False) -> subprocess.CompletedProcess:
    args = ["qemu-io", "-f", fmt, *(["-r", "-U"] if shared else [])]
    for command in commands:
        args += ["-c", command]
    return subprocess.run([*args, str(image)], capture_output=True, text=True, timeout=60)


def nbd_io(client: Path, port: int, export: str, *commands: str) -> subprocess.CompletedProcess:
    """qemu-io as a node with the credentials in client, over NBD with TLS."""
    args = ["qemu-io", "--object", f"tls-creds-x509,id=tls0,dir={client},endpoint=client",
            "--image-opts", f"driver=nbd,host=127.0.0.1,port={port},export={export},"
                            "tls-creds=tls0,tls-hostname=stor1"]
    for command in commands:
        args += ["-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def image(cloud: Cloud, fmt: str) -> str:
    """An image in fmt whose first 64 KiB hold the byte 0x5a."""
    ident = str(uuid.uuid4())
    path = cloud.root / f"image.{fmt}"
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), "64M"], check=True)
    assert qemu_io(path, "write -P 0x5a 0 64k", fmt=fmt).returncode == 0
    cloud.images[ident] = path
    return ident


def test_volumes_from_nothing_an_image_a_volume_and_a_snapshot(cloud: Cloud) -> None:
    raw, qcow = image(cloud, "raw"), image(cloud, "qcow2")
    ids = [str(uuid.uuid4()) for _ in range(6)]
    snap = str(uuid.uuid4())
    wanted = [vol(ids[0]), vol(ids[1], 2, {"type": "image", "id": raw, "disk_format": "raw"}),
              vol(ids[2], 1, {"type": "image", "id": qcow, "disk_format": "qcow2"},
                  snapshots=[snap])]
    report = cloud.converge(wanted)
    store = cloud.manager.store
    assert {v: report[v]["state"] for v in ids[:3]} == dict.fromkeys(ids[:3], "available")
    assert [report[v]["size_gb"] for v in ids[:3]] == [1, 2, 1]
    assert report[ids[2]]["snapshots"] == {snap: "available"}
    for vid in ids[1:3]:
        assert qemu_io(store.volume(vid), "read -P 0x5a 0 64k").returncode == 0
    # Files are root's alone, and sparse: a 2 GiB volume from a 64 MiB image holds little.
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    for path in (store.volume(ids[0]), store.snapshot(snap)):
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid) == (0o600, 0)
    assert store.volume(ids[1]).stat().st_blocks * 512 < 100 << 20

    # Later writes to the volume do not reach its snapshot, nor the clones made from it.
    assert qemu_io(store.volume(ids[2]), "write -P 0x11 0 64k").returncode == 0
    wanted += [vol(ids[3], 3, {"type": "snapshot", "id": snap}),
               vol(ids[4], 1, {"type": "volume", "id": ids[2]}),
               vol(ids[5], 1, {"type": "snapshot", "id": str(uuid.uuid4())})]
    wanted[0]["size_gb"] = 4  # extend
    report = cloud.converge(wanted)
    assert qemu_io(store.volume(ids[3]), "read -P 0x5a 0 64k").returncode == 0
    assert qemu_io(store.volume(ids[4]), "read -P 0x11 0 64k").returncode == 0
    assert (report[ids[0]]["size_gb"], report[ids[3]]["size_gb"]) == (4, 3)
    assert store.size_bytes(store.volume(ids[0])) == 4 * GIB
    assert report[ids[5]]["state"] == "error"
    assert "is not on this storage node" in report[ids[5]]["error"]

    # Converging again changes nothing on disk.
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.root.rglob("*.qcow2")}
    assert cloud.converge(wanted) == report
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in store.root.rglob("*.qcow2")} == before

    # What is no longer listed goes, snapshots included.
    report = cloud.converge(wanted[3:5])
    assert set(report) == {ids[3], ids[4]}
    assert store.volumes() == {ids[3], ids[4]} and store.snapshots() == set()
    # No image is kept once its volumes are made (the lock files stay, as disks.gc says).
    assert [p for p in cloud.manager.cache_dir.iterdir() if not p.name.startswith(".")] == []


def test_an_image_naming_a_backing_file_is_refused(cloud: Cloud) -> None:
    base = cloud.root / "secret.raw"
    base.write_bytes(b"secret" * 100)
    ident = str(uuid.uuid4())
    cloud.images[ident] = cloud.root / "evil.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base),
                    str(cloud.images[ident])], check=True)
    vid = str(uuid.uuid4())
    report = cloud.converge([vol(vid, 1, {"type": "image", "id": ident,
                                           "disk_format": "qcow2"})])
    assert report[vid]["state"] == "error" and "backing file" in report[vid]["error"]
    assert cloud.manager.store.volumes() == set()
    # Not tried again: the error stays until the volume is deleted.
    assert cloud.converge([vol(vid, 1, {"type": "image", "id": ident,
                                        "disk_format": "qcow2"})]) == report


def _caps(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if line.startswith(("Cap", "Uid")))


def test_an_export_serves_only_its_node(cloud: Cloud) -> None:
    vid = str(uuid.uuid4())
    wanted = [vol(vid, exports=[{"node_id": "id-a", "client_cn": "node-a"}])]
    report = cloud.converge(wanted)
    export = report[vid]["exports"]["id-a"]
    assert export["host"] == "127.0.0.1" and export["port"] in PORTS
    port = export["port"]
    record = cloud.manager.exports.records()[(vid, "id-a")]
    pid = cloud.manager.exports.running(record)
    assert pid is not None
    caps = _caps(pid)
    assert caps["CapEff"].strip() == caps["CapBnd"].strip() == "0000000000000000"

    assert nbd_io(cloud.a, port, vid, "write -P 0x77 1M 64k").returncode == 0
    done = nbd_io(cloud.a, port, vid, "read -P 0x77 1M 64k")
    assert done.returncode == 0, done.stderr
    for stranger in (cloud.b, cloud.stranger):
        refused = nbd_io(stranger, port, vid, "read 0 4k")
        assert refused.returncode != 0 and "read 4096/4096" not in refused.stdout
    volume = cloud.manager.store.volume(vid)
    assert qemu_io(volume, "read -P 0x77 1M 64k", shared=True).returncode == 0

    # The same daemon and port at the next converge, and after an agent restart.
    assert cloud.converge(wanted) == report
    storage = cloud.root / "stor1-ca"
    cloud.manager = cloud.make_manager(storage)
    assert cloud.converge(wanted)[vid]["exports"] == report[vid]["exports"]
    assert cloud.manager.exports.running(record) == pid


def test_extend_and_snapshot_while_exported(cloud: Cloud) -> None:
    vid, snap = str(uuid.uuid4()), str(uuid.uuid4())
    wanted = [vol(vid, exports=[{"node_id": "id-a", "client_cn": "node-a"}])]
    port = cloud.converge(wanted)[vid]["exports"]["id-a"]["port"]
    assert nbd_io(cloud.a, port, vid, "write -P 0x42 0 64k").returncode == 0
    wanted[0].update(size_gb=2, snapshots=[snap])
    report = cloud.converge(wanted)
    assert report[vid]["size_gb"] == 2 and report[vid]["snapshots"] == {snap: "available"}
    assert report[vid]["exports"]["id-a"]["port"] == port
    length = nbd_io(cloud.a, port, vid, "length")
    assert length.stdout.strip() == "2 GiB", length.stderr
    assert qemu_io(cloud.manager.store.snapshot(snap), "read -P 0x42 0 64k").returncode == 0


def test_revoking_drops_a_connected_client(cloud: Cloud) -> None:
    vid = str(uuid.uuid4())
    port = cloud.converge([vol(vid, exports=[{"node_id": "id-a", "client_cn": "node-a"}])]
                          )[vid]["exports"]["id-a"]["port"]
    client = _client(cloud, port, vid)
    try:
        _wait_established(port)
        report = cloud.converge([vol(vid)])
        assert report[vid]["exports"] == {} and not _established(port)
        out, _ = client.communicate("read 0 4k\nquit\n", timeout=30)
        assert "read 4096/4096" not in out and "error" in out.lower(), out
        assert nbd_io(cloud.a, port, vid, "read 0 4k").returncode != 0
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def _established(port: int) -> bool:
    done = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                          capture_output=True, text=True, check=True)
    return bool(done.stdout.strip())


def test_a_slow_copy_holds_up_nothing(cloud: Cloud) -> None:
    ident, vid = image(cloud, "raw"), str(uuid.uuid4())
    release = threading.Event()
    fetch = cloud.fetch

    def slow(source: dict[str, Any], dest: Path) -> None:
        assert release.wait(60)
        fetch(source, dest)

    cloud.manager.fetch = slow
    wanted = [vol(vid, 1, {"type": "image", "id": ident, "disk_format": "raw"})]
    started = time.monotonic()
    cloud.manager.converge({"volumes": wanted}, "127.0.0.1")
    cloud.manager.converge({"volumes": wanted}, "127.0.0.1")  # the lane is busy: no wait
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 30  # the lane starts soon (the machine may be busy)
    while vid not in cloud.manager.report() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.manager.report()[vid]["state"] == "creating"
    release.set()
    assert cloud.manager.wait(60)
    assert cloud.manager.report()[vid]["state"] == "available"


def test_a_renewed_certificate_is_served_once_no_client_is_connected(cloud: Cloud) -> None:
    vid = str(uuid.uuid4())
    wanted = [vol(vid, exports=[{"node_id": "id-a", "client_cn": "node-a"}])]
    port = cloud.converge(wanted)[vid]["exports"]["id-a"]["port"]
    record = cloud.manager.exports.records()[(vid, "id-a")]
    first = cloud.manager.exports.running(record)
    client = _client(cloud, port, vid)
    try:
        _wait_established(port)
        # The agent renews its certificate (same key, as renewal does).
        storage = cloud.root / "stor1-ca"
        key = (storage / "client-key.pem").read_bytes()
        cert, _ = pki.sign_client_csr(cloud.root / "ca", pki.make_csr(key, "stor1"), "stor1")
        (storage / "client-cert.pem").write_bytes(cert)
        cloud.converge(wanted)
        assert cloud.manager.exports.running(record) == first  # its client is connected
    finally:
        client.communicate("quit\n", timeout=30)
    deadline = time.monotonic() + 10
    while _established(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud.converge(wanted)[vid]["exports"]["id-a"]["port"] == port
    assert cloud.manager.exports.running(record) not in (None, first)
    assert nbd_io(cloud.a, port, vid, "read 0 4k").returncode == 0


def _client(cloud: Cloud, port: int, vid: str) -> subprocess.Popen[str]:
    """node A's qemu-io, connected and waiting for commands on its stdin."""
    return subprocess.Popen(
        ["qemu-io", "--object", f"tls-creds-x509,id=tls0,dir={cloud.a},endpoint=client",
         "--image-opts", f"driver=nbd,host=127.0.0.1,port={port},export={vid},"
                         "tls-creds=tls0,tls-hostname=stor1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_established(port: int) -> None:
    deadline = time.monotonic() + 10
    while not _established(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _established(port), "the client never connected"
