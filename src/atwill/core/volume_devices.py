"""A volume attached to a guest as QEMU sees it: NBD block node, virtio-blk device, names.

One place decides the names, so that what is hot-plugged over QMP (blockdev-add +
device_add), what is put on the command line at a start (-blockdev + -device) and what
the agent later finds in a running QEMU to detach all agree. Pure: no QMP, no files.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The QOM id of the client credentials object every QEMU that may get volumes is started
# with (the files are root's; QEMU reads them before it drops root, see spec.py).
CREDS_ID = "nbd-client-tls"
NODE_PREFIX = "nbd-"
DEVICE_PREFIX = "vol-"
# QEMU keeps block node names in 32 bytes with the NUL: 24 hex digits of the volume id
# keep them well under that, and two volumes of one guest never share them in practice.
ID_DIGITS = 24
RECONNECT_DELAY = 10  # seconds
# An attachment's own NBD identity (TLS-PSK): the username QEMU presents and its key.
PSK_PREFIX = "psk-"
PSK_FILE = "keys.psk"
_PSK_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
_PSK_KEY = re.compile(r"[0-9a-f]{64}")


class VolumeSpecError(ValueError):
    """A volume entry of the desired state that cannot be attached as given."""


@dataclass(frozen=True)
class Volume:
    """One attachment wanted for an instance (an entry of its desired `volumes`)."""

    volume_id: str
    host: str
    port: int
    export: str
    serial: str = ""
    boot_index: int | None = None
    read_only: bool = False
    # The name the storage node's certificate must carry; by default the address itself.
    tls_hostname: str | None = None
    # The attachment's own identity (TLS-PSK) in place of the node's certificate: only
    # this instance's QEMU holds it, and the export admits the attachments made to it.
    psk_identity: str | None = None
    psk_key: str | None = None
    # The PCI slot of its device, from its name (slot_of): the same on every node, so a
    # live migration's destination lays the guest's devices out as its source did
    # (whether the volume was hot-plugged there or on its command line). Not compared:
    # a guest plugged before slots were fixed keeps its saved devices (suspend, resume).
    slot: int | None = field(default=None, compare=False)

    @classmethod
    def from_desired(cls, entry: dict[str, Any]) -> Volume:
        """The entry as the controller sends it, checked (VolumeSpecError when malformed)."""
        try:
            volume_id = str(uuid.UUID(str(entry["volume_id"])))
            port = entry["port"]
            host = entry["host"]
        except (KeyError, ValueError, TypeError):
            raise VolumeSpecError(f"volume entry without a valid volume_id, host or port: "
                                  f"{entry!r}") from None
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise VolumeSpecError(f"volume {volume_id}: port {port!r} is not a TCP port")
        if not isinstance(host, str) or not host or any(c in host for c in ",/ "):
            raise VolumeSpecError(f"volume {volume_id}: host {host!r} is not an address")
        boot_index = entry.get("boot_index")
        if boot_index is not None and (not isinstance(boot_index, int) or boot_index < 0):
            raise VolumeSpecError(f"volume {volume_id}: boot_index {boot_index!r}")
        identity, key = _psk(volume_id, entry.get("psk"))
        return cls(volume_id=volume_id, host=host, port=port,
                   export=str(entry.get("export") or volume_id),
                   serial=str(entry.get("serial") or volume_id),
                   boot_index=boot_index, read_only=bool(entry.get("read_only")),
                   tls_hostname=entry.get("tls_hostname") or None,
                   psk_identity=identity, psk_key=key, slot=slot_of(entry.get("device")))

    @property
    def node_name(self) -> str:
        return node_name(self.volume_id)

    @property
    def creds_id(self) -> str:
        """The QOM id of the TLS credentials its NBD client uses."""
        return PSK_PREFIX + _digits(self.volume_id) if self.psk_key else CREDS_ID

    @property
    def device_id(self) -> str:
        return device_id(self.volume_id)


# Volumes' slots on the PCI root bus: 0x10 + the device letter's index (vda 0x10, vdb
# 0x11, ...), clear of what a start places itself (from slot 2 up: video, disk, config
# drive, NICs) and of q35's 0x1f; a name past vdo gets QEMU's choice.
FIRST_SLOT, LAST_SLOT = 0x10, 0x1e
_DEVICE = re.compile(r"/dev/(?:vd|sd|hd|xvd)([a-z])")


def slot_of(device: Any) -> int | None:
    """The PCI slot of a volume named device ("/dev/vdb"), None for any other name."""
    found = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if found is None:
        return None
    slot = FIRST_SLOT + ord(found.group(1)) - ord("a")
    return slot if slot <= LAST_SLOT else None


def _psk(volume_id: str, given: Any) -> tuple[str | None, str | None]:
    if given is None:
        return None, None
    if not isinstance(given, dict) or not isinstance(given.get("identity"), str) \
            or not isinstance(given.get("key"), str) \
            or not _PSK_IDENTITY.fullmatch(given["identity"]) \
            or not _PSK_KEY.fullmatch(given["key"]):
        raise VolumeSpecError(f"volume {volume_id}: psk must be an identity and 64 hex digits")
    return given["identity"], given["key"]


def psk_line(volume: Volume) -> str:
    """The attachment's line of a keys.psk file (QEMU's "username:hexkey")."""
    return f"{volume.psk_identity}:{volume.psk_key}\n"


def psk_object(volume: Volume, directory: str) -> dict[str, Any]:
    """object-add's arguments (also -object's JSON) of the attachment's own client
    credentials, read from directory/keys.psk when they are made."""
    return {"qom-type": "tls-creds-psk", "id": volume.creds_id, "endpoint": "client",
            "dir": directory, "username": volume.psk_identity}


def _digits(volume_id: str) -> str:
    return uuid.UUID(volume_id).hex[:ID_DIGITS]


def node_name(volume_id: str) -> str:
    """The block node name of the volume's NBD client in QEMU."""
    return NODE_PREFIX + _digits(volume_id)


def device_id(volume_id: str) -> str:
    """The qdev id of the volume's virtio-blk device."""
    return DEVICE_PREFIX + _digits(volume_id)


def blockdev(volume: Volume) -> dict[str, Any]:
    """The blockdev-add arguments (also -blockdev's JSON) of the volume's NBD client."""
    args: dict[str, Any] = {
        "driver": "nbd", "node-name": volume.node_name,
        "server": {"type": "inet", "host": volume.host, "port": str(volume.port)},
        "export": volume.export, "tls-creds": volume.creds_id,
        # Writes go to the storage node as the guest issues them: no cache on this node,
        # which a storage node's other clients (or a later attach elsewhere) cannot see.
        "cache": {"direct": True, "no-flush": False},
        "read-only": volume.read_only,
        # A storage node that restarts (or a dropped overlay link) costs the guest a wait,
        # not I/O errors; a revoked export (fencing) never comes back, so requests fail.
        "reconnect-delay": RECONNECT_DELAY,
    }
    if volume.tls_hostname and not volume.psk_key:
        args["tls-hostname"] = volume.tls_hostname
    return args


def device(volume: Volume) -> dict[str, Any]:
    """The device_add arguments of the volume's virtio-blk device."""
    args: dict[str, Any] = {"driver": "virtio-blk-pci", "id": volume.device_id,
                            "drive": volume.node_name, "serial": volume.serial}
    if volume.boot_index is not None:
        args["bootindex"] = volume.boot_index
    if volume.slot is not None:
        args["addr"] = f"{volume.slot:#x}"
    return args


def command_line(volumes: Iterable[Volume], creds_dir: str | None,
                 psk_dir: str | None = None) -> list[str]:
    """-object (client credentials), -blockdev and -device for a start: the node's object
    is there whenever creds_dir is, so that volumes attached later can name it; an
    attachment with its own identity gets its object, read from psk_dir/<its digits>."""
    args: list[str] = []
    if creds_dir is not None:
        args += ["-object", json.dumps({"qom-type": "tls-creds-x509", "id": CREDS_ID,
                                        "dir": creds_dir, "endpoint": "client",
                                        "verify-peer": True})]
    for volume in volumes:
        if volume.psk_key:
            if psk_dir is None:
                raise VolumeSpecError(f"volume {volume.volume_id}: no directory for its key")
            args += ["-object", json.dumps(psk_object(
                volume, f"{psk_dir}/{psk_dirname(volume)}"))]
        elif creds_dir is None:
            raise VolumeSpecError(f"volume {volume.volume_id}: this node has no client "
                                  "credentials for NBD")
        # JSON, not key=value: nothing in a value (an export name, a serial) can add a key.
        args += ["-blockdev", json.dumps(blockdev(volume)),
                 "-device", json.dumps(device(volume))]
    return args


def psk_dirname(volume: Volume) -> str:
    """The directory (under the instance's psk_dir) its keys.psk is read from."""
    return _digits(volume.volume_id)


def boots_from_volume(volumes: Iterable[Volume]) -> bool:
    """Whether a volume is the boot disk (boot_index 0): the instance has no local disk."""
    return any(volume.boot_index == 0 for volume in volumes)


def ours(names: Iterable[str], prefix: str) -> set[str]:
    """The names (block nodes or device ids) that this module made."""
    return {name for name in names if name.startswith(prefix)
            and len(name) == len(prefix) + ID_DIGITS}


def plan(wanted: Iterable[Volume], devices: Iterable[str],
         nodes: Iterable[str]) -> tuple[list[Volume], list[str]]:
    """(volumes to attach, digits of attachments to remove) given the devices and block
    nodes a running QEMU has: a half-made attachment (a node without its device, say) is
    finished when wanted and cleared when not."""
    wanted = list(wanted)
    present_devices = {d[len(DEVICE_PREFIX):] for d in ours(devices, DEVICE_PREFIX)}
    present_nodes = {n[len(NODE_PREFIX):] for n in ours(nodes, NODE_PREFIX)}
    keep = {_digits(v.volume_id) for v in wanted}
    attach = [v for v in wanted if _digits(v.volume_id) not in present_devices]
    remove = sorted((present_devices | present_nodes) - keep)
    return attach, remove
