"""NBD volumes in real guests: a real qemu-storage-daemon serves each export with TLS x509
from a CA made here (atwill.pki); the guest's own shell reports the disks it sees."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509

from atwill import pki
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import configdrive, confine, tap, volumes
from atwill.agent.hypervisor.configdrive import PortInfo
from atwill.agent.hypervisor.spec import QEMU, InstanceSpec, Nic, psk_dir
from atwill.agent.hypervisor.volumes import VolumeError
from atwill.agent.instances import InstanceManager
from atwill.agent.storage import exports
from atwill.core import guest_ids
from atwill.core.volume_devices import Volume
from atwill.hostlib.run import run
from tests.host import test_qemu_driver as qd

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None,
                                 reason="needs qemu-storage-daemon"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

lab = qd.lab
guest = qd.guest
STORAGE = "10.77.0.1"  # the lab bridge's address: the exports listen in the lab namespace
CLIENT_CN = "compute-test"
STORAGE_NAME = "storage-test"  # the storage node's name: its certificate's SAN
# Runs in the guest (user data, in the background): each new virtio disk beyond vda is
# announced with its serial and its first bytes, written to at 4 KiB and read back
# (O_DIRECT, so from the export, not the guest's cache); a disk that goes is announced.
WATCHER = b"""#!/bin/sh
exec > /dev/ttyS0 2>&1
echo "atwill-vol: root serial=$(cat /sys/block/vda/serial 2>/dev/null)"
seen=""
while true; do
  now=""
  for d in /sys/block/vd*; do
    n=${d##*/}
    [ "$n" = vda ] && continue
    [ -e "$d" ] || continue
    now="$now $n"
    case " $seen " in *" $n "*) continue;; esac
    s=$(cat "$d/serial" 2>/dev/null)
    echo "atwill-vol: add $n serial=$s"
    echo "atwill-vol: head $n $(dd if=/dev/$n bs=512 count=1 2>/dev/null | tr -cd a-z0-9-)"
    printf 'written-by-guest-%s' "$n" | dd of=/dev/$n bs=512 seek=8 conv=notrunc,fsync \
      2>/dev/null
    echo "atwill-vol: back $n $(dd if=/dev/$n bs=512 skip=8 count=1 iflag=direct \
      2>/dev/null | tr -cd a-z0-9-)"
  done
  for n in $seen; do
    case " $now " in *" $n "*) ;; *) echo "atwill-vol: gone $n";; esac
  done
  seen=$now
  sleep 0.3
done
"""


@dataclass
class Storage:
    """A CA, this node's client identity, and qemu-storage-daemon exports in the lab."""

    root: Path
    netns: str
    config: AgentConfig
    daemons: list[Path] = field(default_factory=list)

    def server_dir(self, ca_dir: Path) -> Path:
        """The storage node's TLS files as it serves them: its own node certificate (CN and
        SAN DNS STORAGE_NAME), signed by the CA in ca_dir."""
        directory = ca_dir / "server"
        if not directory.exists():
            key, csr = pki.make_key_and_csr(STORAGE_NAME)
            cert, _ = pki.sign_client_csr(ca_dir, csr, STORAGE_NAME)
            directory.mkdir(mode=0o700)
            (directory / "server-key.pem").write_bytes(key)
            (directory / "server-cert.pem").write_bytes(cert)
            shutil.copy(ca_dir / "ca.pem", directory / "ca-cert.pem")
        return directory

    def export(self, port: int, ca_dir: Path, fill: str | None = None,
               source: Path | None = None, boot_index: int | None = None,
               psk: tuple[str, str] | None = None) -> Volume:
        """A new 64 MiB volume (a copy of source when given) served on port with the CA of
        ca_dir (its first 512 bytes `fill` when given); the Volume a compute node gets.
        psk (identity, key): served as the storage agent serves an attachment's own
        identity (exports.daemon_argv), to that key alone."""
        volume_id = str(uuid.uuid4())
        image = self.root / f"{volume_id}.qcow2"
        if source is None:
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"])
        else:
            run(["qemu-img", "convert", "-O", "qcow2", str(source), str(image)], timeout=120)
        if fill is not None:
            run(["qemu-io", "-f", "qcow2", "-c", f"write -P {ord(fill)} 0 512", str(image)])
        pidfile = self.root / f"qsd-{port}.pid"
        if psk is None:
            tls = ["--object", f"tls-creds-x509,id=tls0,dir={self.server_dir(ca_dir)},"
                               f"endpoint=server,verify-peer=on,priority={exports.TLS_PRIORITY}",
                   "--object", f"authz-simple,id=authz0,identity=CN={CLIENT_CN}",
                   "--nbd-server", f"addr.type=inet,addr.host={STORAGE},addr.port={port},"
                                   "tls-creds=tls0,tls-authz=authz0"]
        else:
            export = exports.Export(volume_id, "n", CLIENT_CN, STORAGE, port,
                                    (f"{psk[0]}:{psk[1]}",))
            keys = self.root / f"psk-{port}" / "tls"
            keys.mkdir(parents=True, mode=0o700)
            (keys / "keys.psk").write_text(export.psk[0] + "\n")
            argv = exports.daemon_argv(export, image, keys.parent)
            # Its own listening socket (exports.LISTEN_FD) is made by the agent, outside
            # this namespace: here the daemon binds the address itself.
            tls = argv[argv.index("--object"):argv.index("--object") + 2] + [
                "--nbd-server", f"addr.type=inet,addr.host={STORAGE},addr.port={port},"
                                "tls-creds=tls0"]
        run(["ip", "netns", "exec", self.netns, "qemu-storage-daemon",
             "--blockdev", f"driver=file,filename={image},node-name=file0",
             "--blockdev", "driver=qcow2,file=file0,node-name=vol0", *tls,
             "--export", f"type=nbd,id=exp0,node-name=vol0,name={volume_id},writable=on",
             "--pidfile", str(pidfile), "--daemonize"])
        self.daemons.append(pidfile)
        return Volume.from_desired({"volume_id": volume_id, "serial": volume_id,
                                    "host": STORAGE, "port": port, "export": volume_id,
                                    "boot_index": boot_index, "tls_hostname": STORAGE_NAME,
                                    "psk": {"identity": psk[0], "key": psk[1]}
                                    if psk else None})

    def stop(self, pidfile: Path) -> None:
        """Stop the daemon of pidfile, by its PID (checked to be ours)."""
        try:
            pid = int(pidfile.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(pidfile).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)

    def read(self, volume: Volume, offset: int, length: int) -> bytes:
        """Bytes of the volume's file (its daemon stopped first: the data is on disk)."""
        self.stop(self.root / f"qsd-{volume.port}.pid")
        raw = self.root / f"{volume.volume_id}.raw"
        run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
             str(self.root / f"{volume.volume_id}.qcow2"), str(raw)])
        try:
            with raw.open("rb") as data:
                data.seek(offset)
                return data.read(length)
        finally:
            raw.unlink()


@pytest.fixture
def storage(lab: qd.Lab) -> Iterator[Storage]:
    root = lab.root / "storage"
    root.mkdir(mode=0o700)
    ca_dir = root / "ca"
    pki.create_ca(ca_dir)
    state = root / "node"
    (state / "pki").mkdir(parents=True, mode=0o700)
    key, csr = pki.make_key_and_csr(CLIENT_CN)
    cert, _ = pki.sign_client_csr(ca_dir, csr, CLIENT_CN)
    config = AgentConfig(state_dir=state, controller_url="https://127.0.0.1:1",
                         node_id=str(uuid.uuid4()), name=CLIENT_CN)
    config.key.write_bytes(key)
    config.key.chmod(0o600)
    config.cert.write_bytes(cert)
    shutil.copy(ca_dir / "ca.pem", config.ca)
    made = Storage(root, lab.netns, config)
    try:
        yield made
    finally:
        for pidfile in made.daemons:
            made.stop(pidfile)


def boot(lab: qd.Lab, guest: qd.Guest, storage: Storage,
         attached: list[Volume] = (), creds: Path | None = None,
         node_key: bool = True) -> InstanceSpec:
    """A running guest with the disk watcher, its volumes (if any) on the command line."""
    if not guest.acpi:
        pytest.skip("needs the atwill guest image (a shell to look at its disks)")
    instance, port = str(uuid.uuid4()), str(uuid.uuid4())
    nic = Nic("fa:16:3e:" + ":".join(instance[i:i + 2] for i in (0, 2, 4)),
              tap.tap_name(port), 1500, "br0")
    tap.create(nic.tap, bridge=nic.bridge, netns=lab.netns)
    cd = lab.driver.paths(instance).config_drive
    cd.parent.mkdir(parents=True)
    configdrive.build_iso(cd, configdrive.meta_data(instance, "vm", "vm", "proj", {}),
                          configdrive.network_data([PortInfo(port, nic.mac, "net-1")]),
                          WATCHER)
    creds = creds or volumes.client_creds(storage.config.state_dir / "pki" / "nbd-client",
                                          storage.config.ca, storage.config.cert,
                                          storage.config.key)
    lab.started.append(instance)
    spec = InstanceSpec(uuid=instance, name="vm", vcpus=1, memory_mb=192, disk_gb=1,
                        image_path=None if any(v.boot_index == 0 for v in attached)
                        else guest.path, image_format=guest.image_format, nics=[nic],
                        config_drive=cd, accel="tcg", volumes=list(attached),
                        volume_creds=creds if node_key else None)
    lab.driver.start(spec)
    pid = lab.driver.pid(instance)
    assert pid is not None
    lab.pids.append(pid)
    qd.wait_for(lambda: guest.ready in lab.driver.console(instance), qd.BOOT_WAIT, "ready")
    return spec


def seen(lab: qd.Lab, instance: str, line: str, timeout: float = 60) -> None:
    qd.wait_for(lambda: line in lab.driver.console(instance), timeout, repr(line))


def manager_for(lab: qd.Lab, storage: Storage) -> InstanceManager:
    """The agent's instance manager on the lab's driver (QEMU in the lab namespace)."""
    manager = InstanceManager(storage.config)
    manager.driver = lab.driver
    return manager


def converge(manager: InstanceManager, spec: InstanceSpec,
             wanted: list[Volume]) -> dict[str, str]:
    """One converge of the instance as the desired state lists it; its reported volumes."""
    manager.converge([{"id": spec.uuid, "power": "running", "rebuild_serial": 0,
                       "reboot_serial": 0,
                       "volumes": [{"volume_id": v.volume_id, "serial": v.serial,
                                    "device": "/dev/vdb", "host": v.host, "port": v.port,
                                    "export": v.export, "boot_index": None,
                                    "read_only": False, "tls_hostname": v.tls_hostname,
                                    "psk": {"identity": v.psk_identity, "key": v.psk_key}
                                    if v.psk_key else None}
                                   for v in wanted]}])
    assert manager.lanes.wait(timeout=120)
    report = manager.report()[spec.uuid]
    assert report["state"] == "running", report
    volumes_seen: dict[str, str] = report["volumes"]
    return volumes_seen


def test_hot_plug_write_detach_and_a_foreign_ca(lab: qd.Lab, guest: qd.Guest,
                                                storage: Storage) -> None:
    spec = boot(lab, guest, storage)
    manager = manager_for(lab, storage)
    volume = storage.export(10809, storage.root / "ca")

    assert converge(manager, spec, [volume]) == {volume.volume_id: "attached"}
    # The guest shows the first 20 characters of the serial (virtio-blk's limit).
    seen(lab, spec.uuid, f"atwill-vol: add vdb serial={volume.volume_id[:20]}")
    seen(lab, spec.uuid, "atwill-vol: back vdb written-by-guest-vdb")
    assert volume in lab.driver.spec(spec.uuid).volumes  # kept for the next start

    # The instance's user cannot read the key QEMU authenticates with.
    uid = qd.assert_unprivileged(lab.driver.pid(spec.uuid) or 0,
                                 lab.driver.paths(spec.uuid).disk)
    creds = storage.config.state_dir / "pki" / "nbd-client"
    for path in (creds / "client-key.pem", storage.config.key):
        denied = run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                      "cat", str(path)], check=False)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        assert b"PRIVATE KEY" in path.read_bytes()  # (root can: the file is there)

    assert converge(manager, spec, []) == {}
    seen(lab, spec.uuid, "atwill-vol: gone vdb")
    assert lab.driver.spec(spec.uuid).volumes == []
    # What the guest wrote is in the volume on the storage side.
    assert storage.read(volume, 4096, 21) == b"written-by-guest-vdb\0"

    # A storage node whose certificate another CA signed is refused, and said so.
    foreign = storage.root / "other-ca"
    pki.create_ca(foreign, name="some other CA")
    stranger = storage.export(10810, foreign)
    report = converge(manager, spec, [stranger])
    assert report[stranger.volume_id].startswith("error: cannot connect to "
                                                 f"{STORAGE}:10810"), report
    assert "certificate is refused: unable to get local issuer certificate" \
        in report[stranger.volume_id]
    assert lab.driver.spec(spec.uuid).volumes == []
    # An export nobody serves is refused before QEMU is asked (its blockdev-add would
    # hold the monitor, and the guest, until TCP gives up).
    nobody = Volume.from_desired({"volume_id": str(uuid.uuid4()), "host": STORAGE,
                                  "port": 10812})
    report = converge(manager, spec, [nobody])
    assert report[nobody.volume_id].startswith(f"error: cannot reach {STORAGE}:10812"), report
    assert "atwill-vol: add" not in lab.driver.console(spec.uuid).split("gone vdb")[-1]


def test_cold_attach_and_a_guest_that_holds_on(lab: qd.Lab, guest: qd.Guest,
                                               storage: Storage) -> None:
    volume = storage.export(10811, storage.root / "ca", fill="q")
    spec = boot(lab, guest, storage, attached=[volume])
    seen(lab, spec.uuid, f"atwill-vol: add vdb serial={volume.volume_id[:20]}")
    seen(lab, spec.uuid, "atwill-vol: head vdb " + "q" * 64)

    # A guest that does not release the disk (paused here) costs a bounded wait and an
    # error for that volume; the disk stays attached, and the next converge finishes.
    lab.driver.detach_timeout = 2.0
    lab.driver.pause(spec.uuid)
    took = time.monotonic()
    with pytest.raises(VolumeError, match="did not release the disk within 2 s"):
        lab.driver.detach_volume(spec.uuid, volume.volume_id)
    assert time.monotonic() - took < 10
    assert volume in lab.driver.spec(spec.uuid).volumes
    lab.driver.unpause(spec.uuid)
    seen(lab, spec.uuid, "atwill-vol: gone vdb")
    assert lab.driver.sync_volumes(spec.uuid, []) == {}
    assert lab.driver.spec(spec.uuid).volumes == []


def test_boot_from_volume(lab: qd.Lab, guest: qd.Guest, storage: Storage) -> None:
    if not guest.acpi:
        pytest.skip("needs the atwill guest image")
    root = storage.export(10813, storage.root / "ca", source=guest.path, boot_index=0)
    spec = boot(lab, guest, storage, attached=[root])
    # The guest runs from the volume (its only disk, vda, has the volume's serial) ...
    seen(lab, spec.uuid, f"atwill-vol: root serial={root.volume_id[:20]}")
    paths = lab.driver.paths(spec.uuid)
    assert not paths.disk.exists()  # ... and the node has no disk of it
    pid = lab.driver.pid(spec.uuid)
    assert pid is not None
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert not any("id=disk0" in arg for arg in argv)
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    uid = int(status["Uid"].split()[0])
    assert guest_ids.in_block(uid) and int(status["CapEff"], 16) == 0
    record = paths.directory / "runas"
    assert record.stat().st_uid == 0 and record.stat().st_mode & 0o077 == 0

    lab.driver.delete(spec.uuid)
    assert not paths.directory.exists()
    assert not any(owner == uid for _, owner in confine._processes())


def test_a_removed_storage_node_is_refused(lab: qd.Lab, guest: qd.Guest,
                                           storage: Storage) -> None:
    """The storage node's certificate is in the controller's list of removed nodes (a new
    node could hold its name and address): the compute node's QEMU refuses it."""
    ca_dir = storage.root / "ca"
    served = (storage.server_dir(ca_dir) / "server-cert.pem").read_bytes()
    serial = format(x509.load_pem_x509_certificate(served).serial_number, "x")
    manager = manager_for(lab, storage)
    manager.set_volume_crl(pki.crl_pem(ca_dir, [serial]).decode())
    spec = boot(lab, guest, storage, creds=manager._volume_creds())
    volume = storage.export(10814, ca_dir)
    report = converge(manager, spec, [volume])
    assert report[volume.volume_id].startswith(f"error: cannot connect to {STORAGE}:10814"), \
        report
    assert "certificate is refused: certificate revoked" in report[volume.volume_id], report
    assert lab.driver.spec(spec.uuid).volumes == []


def test_each_attachment_has_its_own_key(lab: qd.Lab, guest: qd.Guest,
                                         storage: Storage) -> None:
    """A QEMU holds no node key, only its attachments' own (TLS-PSK): its export admits
    it, another attachment's export does not."""
    spec = boot(lab, guest, storage, node_key=False)
    manager = manager_for(lab, storage)
    mine, other = ("atwill-att-mine", "a1" * 32), ("atwill-att-other", "b2" * 32)
    volume = storage.export(10815, storage.root / "ca", fill="k", psk=mine)
    assert converge(manager, spec, [volume]) == {volume.volume_id: "attached"}
    seen(lab, spec.uuid, "atwill-vol: head vdb " + "k" * 64)
    seen(lab, spec.uuid, "atwill-vol: back vdb written-by-guest-vdb")
    argv = Path(f"/proc/{lab.driver.pid(spec.uuid)}/cmdline").read_bytes().decode()
    assert "tls-creds-x509" not in argv  # no node certificate, no node key
    keys = psk_dir(lab.driver.paths(spec.uuid))
    assert not keys.exists() or not any(keys.iterdir())  # read by QEMU, then removed

    # Another instance's export admits its own attachment's key, not this one's.
    theirs = storage.export(10816, storage.root / "ca", psk=other)
    stolen = Volume(**{**theirs.__dict__, "psk_identity": mine[0], "psk_key": mine[1]})
    report = converge(manager, spec, [volume, stolen])
    assert report[volume.volume_id] == "attached"
    assert report[stolen.volume_id].startswith(f"error: cannot connect to {STORAGE}:10816"), \
        report

    assert converge(manager, spec, []) == {}
    seen(lab, spec.uuid, "atwill-vol: gone vdb")
    assert storage.read(volume, 4096, 21) == b"written-by-guest-vdb\0"
