"""Who may read an NBD export, with a real qemu-storage-daemon and qemu-io as the nodes.

The cluster CA issues certificates to a storage node, to node A (twice: an earlier node A
was removed and its certificate revoked; a new node joined under that name) and to node
B. The export is node A's: only the current node A reads it; node B's valid certificate,
the removed node A's certificate and a client without TLS are refused by the daemon.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atwill import pki
from atwill.agent.hypervisor import migration
from atwill.agent.hypervisor.qmp import QMP
from atwill.agent.storage.reconcile import StorageManager
from tests.host.qemu_stop import quit_or_kill

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None,
                                 reason="needs qemu-storage-daemon"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PORTS = range(10960, 10970)  # apart from test_storage_node's, should both run at once
READ = "read 4096/4096"


def _node(root: Path, ca_dir: Path, name: str, label: str) -> tuple[Path, str]:
    """QEMU's client-side x509 directory for a certificate of name, and its serial."""
    key, csr = pki.make_key_and_csr(name)
    cert, serial = pki.sign_client_csr(ca_dir, csr, name)
    directory = root / label
    directory.mkdir(mode=0o700)
    (directory / "client-key.pem").write_bytes(key)
    (directory / "client-cert.pem").write_bytes(cert)
    (directory / "ca-cert.pem").write_bytes((ca_dir / "ca.pem").read_bytes())
    return directory, serial


class Cloud:
    def __init__(self, root: Path) -> None:
        self.root, self.ca = root, root / "ca"
        pki.create_ca(self.ca)
        storage, _ = _node(root, self.ca, "stor1", "stor1")
        self.a, _ = _node(root, self.ca, "node-a", "a")
        self.removed_a, self.removed_serial = _node(root, self.ca, "node-a", "removed-a")
        self.b, _ = _node(root, self.ca, "node-b", "b")
        self.manager = StorageManager(root / "volumes", storage / "ca-cert.pem",
                                      storage / "client-cert.pem", storage / "client-key.pem",
                                      lambda source, dest: None, PORTS)
        self.volumes: list[dict[str, Any]] = []

    def export(self, revoked: list[str]) -> tuple[str, int]:
        """A new volume exported to node A, every export with the list of revoked."""
        vid = str(uuid.uuid4())
        self.volumes.append({"id": vid, "size_gb": 1, "format": "qcow2", "source": None,
                             "snapshots": [],
                             "exports": [{"node_id": "id-a2", "client_cn": "node-a"}]})
        report = self.converge(revoked)
        return vid, report[vid]["exports"]["id-a2"]["port"]

    def converge(self, revoked: list[str] | None) -> dict[str, Any]:
        crl = None if revoked is None else pki.crl_pem(self.ca, revoked).decode()
        self.manager.converge({"volumes": self.volumes, "crl": crl}, "127.0.0.1")
        assert self.manager.wait(60)
        return self.manager.report()

    def log(self, vid: str) -> str:
        return (self.manager.exports.directory(vid, "id-a2") / "log").read_text()


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    # Short: the exports' QMP socket paths must stay within a UNIX socket's 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="xtls-", dir="/tmp"))
    made = Cloud(root)
    try:
        yield made
    finally:
        made.volumes = []
        made.converge(None)
        assert made.manager.exports.records() == {}
        shutil.rmtree(root)


def nbd_io(client: Path | None, port: int, export: str, command: str
           ) -> subprocess.CompletedProcess:
    """qemu-io as a node with the x509 files in client (None: no TLS at all)."""
    opts = f"driver=nbd,host=127.0.0.1,port={port},export={export}"
    args = ["qemu-io"]
    if client is not None:
        args += ["--object", f"tls-creds-x509,id=tls0,dir={client},endpoint=client"]
        opts += ",tls-creds=tls0,tls-hostname=stor1"
    return subprocess.run([*args, "--image-opts", opts, "-c", command], capture_output=True,
                          text=True, timeout=60)


def test_the_rightful_node_reads_and_writes_the_export(cloud: Cloud) -> None:
    vid, port = cloud.export([cloud.removed_serial])
    assert nbd_io(cloud.a, port, vid, "write -P 0x6b 0 4k").returncode == 0
    done = nbd_io(cloud.a, port, vid, "read -P 0x6b 0 4k")
    assert done.returncode == 0 and READ in done.stdout, done.stderr


def test_another_nodes_valid_certificate_is_refused(cloud: Cloud) -> None:
    vid, port = cloud.export([cloud.removed_serial])
    refused = nbd_io(cloud.b, port, vid, "read 0 4k")
    assert refused.returncode != 0 and READ not in refused.stdout
    assert "CN=node-b" in cloud.log(vid) and "denied" in cloud.log(vid)


def test_a_revoked_certificate_is_refused_also_once_the_list_changes(cloud: Cloud) -> None:
    vid, port = cloud.export([cloud.removed_serial])
    refused = nbd_io(cloud.removed_a, port, vid, "read 0 4k")
    assert refused.returncode != 0 and READ not in refused.stdout
    assert "revoked" in cloud.log(vid)
    # Exported before the removal: the removed node A still reads (its name is right)...
    cloud.volumes = []
    cloud.converge([])
    vid, port = cloud.export([])
    assert READ in nbd_io(cloud.removed_a, port, vid, "read 0 4k").stdout
    # ...until the list names it: the daemon, with no client connected, loads it.
    assert cloud.converge([cloud.removed_serial])[vid]["exports"]["id-a2"]["port"] == port
    refused = nbd_io(cloud.removed_a, port, vid, "read 0 4k")
    assert refused.returncode != 0 and READ not in refused.stdout
    assert READ in nbd_io(cloud.a, port, vid, "read 0 4k").stdout


def test_a_client_without_tls_is_refused(cloud: Cloud) -> None:
    vid, port = cloud.export([cloud.removed_serial])
    refused = nbd_io(None, port, vid, "read 0 4k")
    assert refused.returncode != 0 and READ not in refused.stdout
    assert "TLS" in refused.stderr


class Qemu:
    """A QEMU without a machine, holding one qcow2 disk as drive disk0 (as an instance's),
    with its QMP socket; with incoming, it waits for a migration."""

    def __init__(self, root: Path, name: str, incoming: bool = False) -> None:
        self.disk, self.qmp = root / f"{name}.qcow2", root / f"{name}.sock"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.disk), "16M"],
                       check=True)
        self.process = subprocess.Popen(
            ["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
             "-drive", f"if=none,id=disk0,format=qcow2,file={self.disk}",
             "-qmp", f"unix:{self.qmp},server=on,wait=off",
             *(["-incoming", "defer"] if incoming else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.qmp.exists():
            assert time.monotonic() < deadline, "QEMU did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        quit_or_kill(self.qmp, self.process)


def test_a_migration_stream_and_its_mirror_need_the_migrations_key(cloud: Cloud) -> None:
    root = cloud.root / "mig"
    (root / "src").mkdir(parents=True)
    tls = migration.Tls("atwill-migration-7", "5e" * 32)
    source, dest = Qemu(root, "src"), Qemu(root, "dst", incoming=True)
    try:
        nbd_port, port = migration.free_ports("127.0.0.1")
        dest_keys = migration.key_directory(root, dest.disk, tls)
        with QMP(dest.qmp, 10) as qmp:
            migration.receive(qmp, "127.0.0.1", nbd_port, port, dest_keys)
        # Nobody else writes the destination's disk: not in the clear, nor with another key.
        wrong = root / "wrong"
        wrong.mkdir()
        (wrong / "keys.psk").write_text(f"{tls.username}:{'77' * 32}\n")
        for creds in ([], ["--object", f"tls-creds-psk,id=t0,dir={wrong},endpoint=client,"
                                       f"username={tls.username}"]):
            opts = f"driver=nbd,host=127.0.0.1,port={nbd_port},export={migration.DRIVE}"
            refused = subprocess.run(
                ["qemu-io", *creds, "--image-opts", opts + (",tls-creds=t0" if creds else ""),
                 "-c", "write -P 0x13 0 4k"], capture_output=True, text=True, timeout=60)
            assert refused.returncode != 0 and "wrote" not in refused.stdout
        # The source, with the key, mirrors the disk and migrates.
        source_keys = migration.key_directory(root / "src", source.disk, tls)
        with QMP(source.qmp, 10) as qmp:
            qmp.execute("human-monitor-command",
                        {"command-line": "qemu-io disk0 \"write -P 0x42 0 64k\""})
        order = migration.Order(migration=7, host="127.0.0.1", nbd_port=nbd_port, port=port,
                                tls={"username": tls.username, "key": tls.key})
        migration.send(migration.connected(source.qmp, 10), lambda: order, lambda _: None,
                       60, source_keys)
        deadline = time.monotonic() + 10
        while migration.connected(dest.qmp, 10)("query-migrate").get("status") != "completed":
            assert time.monotonic() < deadline, "the destination did not take the guest"
            time.sleep(0.05)
        migration.stop_serving(migration.connected(dest.qmp, 10))
    finally:
        source.stop()
        dest.stop()
    check = subprocess.run(["qemu-io", "-f", "qcow2", "-c", "read -P 0x42 0 64k",
                            str(dest.disk)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "read 65536/65536" in check.stdout, check.stdout
