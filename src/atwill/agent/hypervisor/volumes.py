"""Hot-plugging NBD volumes into a running QEMU, and taking them out again, over QMP.

QEMU's monitor takes one client at a time and the heartbeat asks every instance's QEMU
for its state: no session here is held while the guest is waited for. A detach sends
device_del, then looks (in short sessions) until the device is gone, for a bounded time;
a guest that never lets go of the disk is reported as an error for that volume, and the
next converge asks again. Only the instance's own lane waits meanwhile (lanes.py).

Each attachment made since migration 0026 has an identity of its own: a TLS pre-shared
key the controller gives only to the instance's node and the export (which admits the
keys of the attachments made to it, nothing else). Its QEMU gets the key as an object of
its own: on the command line at a start (read as root, before -runas drops it), or by
object-add at a hot-plug from a file only the instance's user can read; either file is
removed once QEMU has read it. So a guest that escapes into its QEMU holds its own
attachments' keys alone: no other instance's volumes, and not the node's identity.

Attachments made before have no key and use the node's cluster certificate (QEMU reads
that key as root at its start: an object-add of tls-creds-x509 after the drop fails with
"Permission denied", checked against QEMU 7.2), so only a QEMU started with such a volume
holds the node's key, and one started without refuses to hot-plug such a volume until
it restarts. Its credentials are read once, at QEMU's start: after the node's
certificate is renewed (renewal.py), a running QEMU still presents the one it started
with. QEMU's NBD client loads no revocation list: nbd_check.py checks the storage node's
certificate before each connection QEMU is asked to make.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor import nbd_check
from atwill.agent.hypervisor.qmp import QMP, QMPError
from atwill.core import volume_devices as vd
from atwill.core.volume_devices import Volume
from atwill.hostlib.run import HostCommandError, run

log = logging.getLogger("atwill.agent.volumes")
# How long a guest gets to release a disk (ACPI unplug); Nova's libvirt driver waits
# about this long before it retries the detach.
DETACH_TIMEOUT = 20.0
POLL = 0.2
RELEASE_TIMEOUT = 10.0
PROBE_TIMEOUT = 5.0
ERROR_CHARS = 1024


class VolumeError(RuntimeError):
    """A volume could not be attached or detached; the message is for the report."""


class Volumes:
    """Attach and detach volumes of one running QEMU, reached through its QMP socket."""

    def __init__(self, qmp_path: Path, qmp_timeout: float = 5.0,
                 detach_timeout: float = DETACH_TIMEOUT,
                 probe: Callable[[Volume], None] | None = None,
                 creds: Path | None = None, keys: Path | None = None,
                 owner: tuple[int, int] | None = None) -> None:
        self.qmp_path = qmp_path
        self.qmp_timeout = qmp_timeout
        self.detach_timeout = detach_timeout
        self.probe = probe or checker(creds)
        # Where an attachment's key is handed to QEMU, and QEMU's user (-runas uid, gid).
        self.keys, self.owner = keys, owner

    def present(self) -> tuple[set[str], set[str]]:
        """(device ids, block node names) of this module's making that QEMU has now."""
        with self._session() as qmp:
            return self._devices(qmp), self._nodes(qmp)

    def converge(self, wanted: list[vd.Volume], known: Collection[str] = ()) -> dict[str, str]:
        """Attach what is wanted and missing, detach what is present and not wanted; the
        outcome by volume id: "attached" or "error: …" (a volume detached is not listed).
        known: ids that may be attached (QEMU's names hold only part of an id), to name
        a failed detach by. An error of one volume never stops the others."""
        devices, nodes = self.present()
        attach, remove = vd.plan(wanted, devices, nodes)
        outcome = {v.volume_id: "attached" for v in wanted}
        for volume in attach:
            outcome[volume.volume_id] = _attempt(lambda v=volume: self.attach(v))
        names = {vd.node_name(i)[len(vd.NODE_PREFIX):]: i for i in known}
        for digits in remove:
            result = _attempt(lambda d=digits: self.detach(d))
            if result != "attached":
                outcome[names.get(digits, vd.DEVICE_PREFIX + digits)] = result
        return outcome

    def attach(self, volume: vd.Volume) -> None:
        """blockdev-add (the NBD connection and TLS handshake happen here) and device_add;
        a device that cannot be added leaves no block node behind."""
        # QEMU 7.2 connects inside blockdev-add holding its main loop: an export that
        # does not answer would freeze the monitor and the guest until TCP gives up. The
        # probe also refuses a revoked storage node, which QEMU would admit (nbd_check.py).
        self.probe(volume)
        with self._session() as qmp:
            if volume.node_name not in self._nodes(qmp):
                self._identity(qmp, volume)
                try:
                    qmp.execute("blockdev-add", vd.blockdev(volume), timeout=30.0)
                except QMPError as err:
                    self._forget(qmp, volume.creds_id)
                    raise VolumeError(f"cannot connect to {volume.host}:{volume.port} "
                                      f"export {volume.export}: {_reason(err)}") from None
            try:
                qmp.execute("device_add", vd.device(volume))
            except QMPError as err:
                _quietly(qmp, "blockdev-del", {"node-name": volume.node_name})
                self._forget(qmp, volume.creds_id)
                raise VolumeError(f"cannot add the disk to the guest: {_reason(err)}") from None
        log.info("volume %s attached from %s:%s", volume.volume_id, volume.host, volume.port)

    def detach(self, digits: str) -> None:
        """device_del, wait (bounded) until the guest has released the device, then
        blockdev-del, which closes the NBD connection."""
        device, node = vd.DEVICE_PREFIX + digits, vd.NODE_PREFIX + digits
        with self._session() as qmp:
            if device in self._devices(qmp):
                try:
                    qmp.execute("device_del", {"id": device})
                except QMPError as err:
                    # An unplug already asked for is still pending: wait for it as well.
                    log.info("device_del %s: %s", device, err)
        deadline = time.monotonic() + self.detach_timeout
        while self._has_device(device):
            if time.monotonic() >= deadline:
                raise VolumeError(f"the guest did not release the disk within "
                                  f"{self.detach_timeout:.0f} s")
            time.sleep(POLL)
        # The device leaves the QOM tree a moment before it lets go of its block node.
        deadline = time.monotonic() + RELEASE_TIMEOUT
        while not self._close(node):
            if time.monotonic() >= deadline:
                raise VolumeError(f"the volume's block node {node} stays in use")
            time.sleep(POLL)
        log.info("volume device %s detached", device)

    def _close(self, node: str) -> bool:
        """blockdev-del (the NBD connection closes) and the attachment's own credentials;
        False while the node is in use."""
        with self._session() as qmp:
            if node in self._nodes(qmp):
                try:
                    qmp.execute("blockdev-del", {"node-name": node})
                except QMPError as err:
                    if "in use" in str(err):
                        return False
                    raise VolumeError(f"cannot close the volume: {_reason(err)}") from None
            self._forget(qmp, vd.PSK_PREFIX + node[len(vd.NODE_PREFIX):])
        return True

    def _identity(self, qmp: QMP, volume: Volume) -> None:
        """The attachment's own credentials, made in the running QEMU from a key file only
        its user can read, which is removed once QEMU has read it (QEMU keeps the key in
        memory for reconnects). A QEMU started without the node's key can take it."""
        if not volume.psk_key:
            return
        if self.keys is None:
            raise VolumeError("this instance has no place for its attachment keys")
        self._forget(qmp, volume.creds_id)  # a half-made attach's leftover
        directory = write_psk(self.keys, volume, self.owner)
        try:
            qmp.execute("object-add", vd.psk_object(volume, str(directory)))
        except QMPError as err:
            raise VolumeError(f"cannot load the attachment's key: {_reason(err)}") from None
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def _forget(qmp: QMP, creds_id: str) -> None:
        if not creds_id.startswith(vd.PSK_PREFIX):
            return
        try:
            qmp.execute("object-del", {"id": creds_id})
        except QMPError:
            pass  # none was made (or its block node is gone with it)

    def _has_device(self, device: str) -> bool:
        with self._session() as qmp:
            return device in self._devices(qmp)

    def _session(self) -> QMP:
        return QMP(self.qmp_path, self.qmp_timeout)

    @staticmethod
    def _devices(qmp: QMP) -> set[str]:
        listed = qmp.execute("qom-list", {"path": "/machine/peripheral"})
        names = [p.get("name") for p in listed if isinstance(p, dict)] \
            if isinstance(listed, list) else []
        return vd.ours((n for n in names if isinstance(n, str)), vd.DEVICE_PREFIX)

    @staticmethod
    def _nodes(qmp: QMP) -> set[str]:
        listed = qmp.execute("query-named-block-nodes", {"flat": True})
        names = [n.get("node-name") for n in listed if isinstance(n, dict)] \
            if isinstance(listed, list) else []
        return vd.ours((n for n in names if isinstance(n, str)), vd.NODE_PREFIX)


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT) -> None:
    """VolumeError unless a TCP connection to host:port opens within timeout."""
    try:
        socket.create_connection((host, port), timeout).close()
    except OSError as err:
        raise VolumeError(f"cannot reach {host}:{port}: {err}") from None


def suspended_outcome(held: list[Volume], wanted: list[Volume]) -> dict[str, str]:
    """A suspended guest's saved state names its devices: the resume needs the very same
    ones, so its volumes change only once it runs again."""
    have = {v.volume_id for v in held}
    outcome = {v.volume_id: "attached" for v in held}
    changing = [v.volume_id for v in wanted if v.volume_id not in have]
    changing += [i for i in have if i not in {v.volume_id for v in wanted}]
    for volume_id in changing:
        outcome[volume_id] = "error: the instance is suspended; resume it first"
    return outcome


def checker(creds: Path | None) -> Callable[[Volume], None]:
    """The check before QEMU connects: the export's certificate (nbd_check.py) when there
    are client credentials, else that it answers at all."""
    def probe(volume: Volume) -> None:
        if creds is None or volume.psk_key:
            # An attachment's own key proves the storage node as much as it proves us.
            reachable(volume.host, volume.port)
            return
        try:
            nbd_check.check(volume.host, volume.port, volume.tls_hostname, creds,
                            PROBE_TIMEOUT)
        except nbd_check.CheckFailed as err:
            raise VolumeError(str(err)) from None
    return probe


def probe_in(launcher: list[str], creds: Path | None = None) -> Callable[[Volume], None]:
    """checker(creds), run where QEMU runs (behind launcher, e.g. in a network namespace)."""
    code = ("import socket, sys\n"
            "socket.create_connection((sys.argv[1], int(sys.argv[2])), 5).close()")

    def probe(volume: Volume) -> None:
        where = [volume.host, str(volume.port)]
        bare = creds is None or bool(volume.psk_key)
        argv = ["-c", code, *where] if bare else \
            ["-m", nbd_check.__name__, *where, volume.tls_hostname or "-", str(creds)]
        try:
            run([*launcher, sys.executable, *argv], timeout=15)
        except HostCommandError as err:
            last = (err.stderr.splitlines()[-1:] or [f"exit {err.returncode}"])[0]
            # nbd_check says what failed itself; the bare connection says nothing.
            raise VolumeError(f"cannot reach {where[0]}:{where[1]}: {last}" if bare
                              else last) from None
    return probe


def client_creds(directory: Path, ca: Path, cert: Path, key: Path,
                 crl: bytes | None = None) -> Path:
    """The directory QEMU's tls-creds-x509 (endpoint=client) reads: the node's own CA,
    certificate and key under the names QEMU wants, as links, so a renewed certificate is
    what the next QEMU start loads. Root's alone (0700): no instance user can enter it.

    crl (the controller's list of removed nodes' certificates) becomes ca-crl.pem, which
    the agent's check before each connection QEMU makes reads (nbd_check.py): a removed
    storage node (whose name and address a new node may have taken) is refused. QEMU's
    client itself loads no revocation list."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    for name, target in (("ca-cert.pem", ca), ("client-cert.pem", cert),
                         ("client-key.pem", key)):
        link = directory / name
        if not link.is_symlink() or Path(link.readlink()) != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
    listed = directory / "ca-crl.pem"
    if crl is not None and (not listed.exists() or listed.read_bytes() != crl):
        partial = directory / ".ca-crl.pem.new"
        partial.write_bytes(crl)
        partial.chmod(0o600)
        partial.replace(listed)  # a QEMU starting meanwhile reads the old list or the new
    return directory


def write_psk(keys: Path, volume: Volume, owner: tuple[int, int] | None = None) -> Path:
    """keys/<volume's digits>/keys.psk holding the attachment's key, readable by owner
    (QEMU's user; root's when None) and nobody else; the directory, for QEMU's dir=."""
    keys.mkdir(exist_ok=True)
    keys.chmod(0o711)  # QEMU's user passes through (the umask would have closed it)
    directory = keys / vd.psk_dirname(volume)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o700)
    path = directory / vd.PSK_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(vd.psk_line(volume))
        if owner is not None:
            # The file by its descriptor, then the directory last: once QEMU's user owns
            # the directory it could swap the key for a symlink that a chown by path
            # would follow (review finding: root chowning /etc/shadow to the guest's user).
            os.fchown(out.fileno(), *owner)
    if owner is not None:
        os.chown(directory, *owner, follow_symlinks=False)
    return directory


def _attempt(action: Callable[[], None]) -> str:
    try:
        action()
    except (VolumeError, QMPError) as err:
        # QEMU's words (which a guest in control of its QEMU may choose) stay short.
        return f"error: {err}"[:ERROR_CHARS]
    return "attached"


def _reason(err: QMPError) -> str:
    # "blockdev-add: The certificate hasn't got a known issuer" -> the part after the verb.
    return str(err).split(": ", 1)[-1]


def _quietly(qmp: QMP, command: str, arguments: dict[str, Any]) -> None:
    try:
        qmp.execute(command, arguments)
    except QMPError as err:
        log.warning("%s %s: %s", command, arguments, err)
