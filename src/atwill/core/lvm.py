"""The LVM thin backend's pure part: names, command lines, `lvs` reports, capacity.

A storage node configured with a volume group and a thin pool (`atwill join
--storage-vg VG[/POOL]`, agent.yaml `storage_vg`) keeps each volume as a thin LV
`volume-<id>` and each snapshot as a thin snapshot `_snapshot-<id>` (LVM reserves names
that start with "snapshot", hence Cinder's leading underscore), in that pool, each
tagged `atwill`: only tagged LVs of the pool are ever listed, so nothing else in a shared
volume group is taken for an unwanted volume and deleted.

An id must never become an option or leave the volume group: it is checked against the
same pattern as the file backend's (a letter or digit first, then letters, digits and
dashes) before any name or path is made of it, and every LV name passed to a command is
`VG/LV` with a VG that cannot start with a dash either.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from atwill.core.imageformat import QEMU_FORMATS

GIB = 1 << 30
TAG = "atwill"
VOLUME_PREFIX = "volume-"
SNAPSHOT_PREFIX = "_snapshot-"
# A point-in-time copy made for an upload (os-volume_upload_image), removed after.
COPY_PREFIX = "_copy-"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
# LVM's own rule for VG and LV names (lvm(8) "VG and LV names"), without a leading dash.
_NAME = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
_RESERVED_PREFIXES = ("snapshot", "pvmove")
_RESERVED_PARTS = ("_cdata", "_cmeta", "_corig", "_mimage", "_mlog", "_pmspare", "_rimage",
                   "_rmeta", "_tdata", "_tmeta", "_vorigin", "_vdata")
LVS_FIELDS = "lv_name,vg_name,lv_attr,lv_size,pool_lv,data_percent,lv_tags"
# What a storage node needs to keep volumes on LVM (besides the file backend's tools).
TOOLS = ("lvs", "lvcreate", "lvextend", "lvremove", "lvchange")
# Given to every LVM command: never look inside LVs for PV headers (lvm.conf(5)
# devices/scan_lvs), so a VG a guest wrote into its volume is never seen, or acted on, by
# the host, whatever this host's lvm.conf says.
NO_LV_SCAN = ("--config", "devices/scan_lvs=0")


class LvmNameError(ValueError):
    """A volume group, pool or id that cannot safely name an LV."""


def check_id(ident: object) -> str:
    """ident if it can be part of an LV name; LvmNameError otherwise."""
    if not isinstance(ident, str) or not _ID.fullmatch(ident):
        raise LvmNameError(f"not a volume or snapshot id: {ident!r}")
    return ident


def check_name(name: object, what: str) -> str:
    """name if LVM accepts it as a VG or LV name and it cannot be read as an option."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", "..") \
            or name.startswith(_RESERVED_PREFIXES) \
            or any(part in name for part in _RESERVED_PARTS):
        raise LvmNameError(f"not a usable LVM {what} name: {name!r}")
    return name


@dataclass(frozen=True)
class ThinPool:
    """The volume group and thin pool a storage node keeps its volumes in."""

    vg: str
    pool: str

    def __post_init__(self) -> None:
        check_name(self.vg, "volume group")
        check_name(self.pool, "thin pool")

    @classmethod
    def parse(cls, spec: object) -> ThinPool:
        """'VG' or 'VG/POOL' (the pool defaults to '<VG>-pool', as Cinder's lvm_type=thin)."""
        if not isinstance(spec, str) or spec.count("/") > 1:
            raise LvmNameError(f"not VG or VG/POOL: {spec!r}")
        vg, slash, pool = spec.partition("/")
        if slash and not pool:
            raise LvmNameError(f"not VG or VG/POOL: {spec!r}")
        return cls(vg, pool or f"{vg}-pool")

    def __str__(self) -> str:
        return f"{self.vg}/{self.pool}"

    def lv(self, name: str) -> str:
        """'VG/name', the way every command here names an LV."""
        return f"{self.vg}/{check_name(name, 'logical volume')}"

    def device(self, name: str) -> str:
        """The LV's device node (udev's /dev/VG/LV link)."""
        return f"/dev/{self.vg}/{check_name(name, 'logical volume')}"


def volume_lv(ident: str) -> str:
    return f"{VOLUME_PREFIX}{check_id(ident)}"


def snapshot_lv(ident: str) -> str:
    return f"{SNAPSHOT_PREFIX}{check_id(ident)}"


def copy_lv(ident: str) -> str:
    return f"{COPY_PREFIX}{check_id(ident)}"


def ident_of(lv_name: str, prefix: str) -> str | None:
    """The id an LV named prefix + id stands for, or None when it is no such LV."""
    if not lv_name.startswith(prefix):
        return None
    ident = lv_name[len(prefix):]
    return ident if _ID.fullmatch(ident) else None


# command lines -------------------------------------------------------------------------
def size_arg(size_gb: int) -> str:
    """A size in GiB as LVM reads it (its lower-case units are binary)."""
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb < 1:
        raise ValueError(f"not a volume size in GiB: {size_gb!r}")
    return f"{size_gb}g"


def create_argv(pool: ThinPool, name: str, size_gb: int) -> list[str]:
    """A thin LV of size_gb (virtual) in the pool: nothing allocated until written."""
    return ["lvcreate", *NO_LV_SCAN, "--yes", "--thin", "--virtualsize", size_arg(size_gb),
            "--name", check_name(name, "logical volume"), "--addtag", TAG,
            "--setactivationskip", "n", "--activate", "y", str(pool)]


def snapshot_argv(pool: ThinPool, origin: str, name: str) -> list[str]:
    """A thin snapshot of origin (no size: it shares the pool), active now and at boot.

    A thin snapshot is an LV of its own: it outlives its origin, and a volume made from
    a snapshot or cloned from a volume is one too (sharing blocks until written)."""
    return ["lvcreate", *NO_LV_SCAN, "--yes", "--snapshot",
            "--name", check_name(name, "logical volume"), "--addtag", TAG,
            "--setactivationskip", "n", "--activate", "y", pool.lv(origin)]


def extend_argv(pool: ThinPool, name: str, size_gb: int) -> list[str]:
    """Grow a thin LV's virtual size to size_gb (lvextend refuses to shrink)."""
    return ["lvextend", *NO_LV_SCAN, "--size", size_arg(size_gb), pool.lv(name)]


def remove_argv(pool: ThinPool, name: str) -> list[str]:
    return ["lvremove", *NO_LV_SCAN, "--yes", "--force", pool.lv(name)]


def activate_argv(pool: ThinPool, name: str) -> list[str]:
    """Activate an LV (after a reboot, or one made with activation skipped)."""
    return ["lvchange", *NO_LV_SCAN, "--activate", "y", "--ignoreactivationskip", pool.lv(name)]


def lvs_argv(pool: ThinPool) -> list[str]:
    """Every LV of the volume group, as JSON with sizes in bytes."""
    return ["lvs", *NO_LV_SCAN, "--reportformat", "json", "--units", "b", "--nosuffix",
            "--options", LVS_FIELDS, pool.vg]


def write_image_argv(image: str, fmt: str, device: str) -> list[str]:
    """qemu-img writing image (its format always given) raw onto an existing thin LV.

    -n: the LV exists (qemu-img would try to create the target); --target-is-zero: a new
    thin LV reads as zeroes, so zero blocks are skipped and stay unallocated."""
    if fmt not in set(QEMU_FORMATS.values()):
        raise ValueError(f"not an image format for a volume: {fmt!r}")
    return ["qemu-img", "convert", "-q", "-n", "--target-is-zero", "-f", fmt, "-O", "raw",
            image, device]


def copy_out_argv(device: str, target: str) -> list[str]:
    """qemu-img copying a raw LV (a snapshot nobody writes) into a new qcow2 file."""
    return ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", device, target]


# reports ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogicalVolume:
    name: str
    vg: str
    attr: str
    size: int  # bytes (a thin LV's virtual size)
    pool: str  # the thin pool a thin LV lives in, "" for others
    data_percent: float  # how much of it is allocated (thin LVs and pools), 0 if none
    tags: tuple[str, ...]

    @property
    def allocated(self) -> int:
        return int(self.size * self.data_percent / 100)

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"


def parse_lvs(text: str) -> list[LogicalVolume]:
    """The LVs of `lvs --reportformat json --units b --nosuffix` output (values as strings,
    as LVM 2.02/2.03 print them, or numbers, as json_std does)."""
    try:
        data = json.loads(text)
        rows = [row for report in data["report"] for row in report.get("lv", [])]
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"lvs printed no JSON report: {err}") from None
    found = []
    for row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"lvs printed an LV that is not an object: {row!r}")
        tags = row.get("lv_tags") or ""
        found.append(LogicalVolume(
            name=str(row.get("lv_name", "")), vg=str(row.get("vg_name", "")),
            attr=str(row.get("lv_attr", "")), size=_number(row.get("lv_size"), int),
            pool=str(row.get("pool_lv") or ""),
            data_percent=_number(row.get("data_percent"), float),
            tags=tuple(t for t in (tags if isinstance(tags, list) else str(tags).split(","))
                       if t)))
    return found


def _number(value: Any, kind: type) -> Any:
    if value in (None, ""):
        return kind(0)
    try:
        return kind(float(value)) if kind is int else kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"lvs printed {value!r} where a number belongs") from None


def ours(lvs: list[LogicalVolume], pool: ThinPool, prefix: str) -> dict[str, LogicalVolume]:
    """id -> LV for the tagged thin LVs of the pool whose names are prefix + id."""
    found = {}
    for lv in lvs:
        ident = ident_of(lv.name, prefix)
        if ident is not None and lv.vg == pool.vg and lv.pool == pool.pool and TAG in lv.tags:
            found[ident] = lv
    return found


def owned(lvs: list[LogicalVolume], pool: ThinPool, name: str) -> LogicalVolume | None:
    """The LV named name if it is one of ours: a tagged thin LV of the pool (an LV of the
    same name that is not is never copied, grown or removed)."""
    for lv in lvs:
        if lv.name == name and lv.vg == pool.vg and lv.pool == pool.pool and TAG in lv.tags:
            return lv
    return None


def find_pool(lvs: list[LogicalVolume], pool: ThinPool) -> LogicalVolume:
    """The thin pool's own LV; LookupError when the group has no such thin pool."""
    for lv in lvs:
        if lv.vg == pool.vg and lv.name == pool.pool:
            if not lv.attr.startswith("t"):
                raise LookupError(f"{pool} is not a thin pool (lv_attr {lv.attr})")
            if not zeroes_new_blocks(lv):
                raise LookupError(
                    f"the thin pool {pool} does not zero new blocks (lv_attr {lv.attr}, made "
                    "with -Zn?): a new volume would read other volumes' deleted data; "
                    f"turn zeroing on with: lvchange --zero y {pool}")
            return lv
    raise LookupError(f"the volume group {pool.vg} has no thin pool {pool.pool}; make one "
                      f"with: lvcreate --type thin-pool --zero y -l 90%FREE -n {pool.pool} "
                      f"{pool.vg}")


def zeroes_new_blocks(lv: LogicalVolume) -> bool:
    """Whether the pool overwrites newly allocated blocks with zeroes before use: lv_attr's
    8th character is "z" (lvs(8), "The lv_attr bits are": 8). Without it a chunk freed by
    a deleted volume is handed to another volume as it was, and qemu-img's
    --target-is-zero (write_image_argv) would leave that data readable."""
    return len(lv.attr) > 7 and lv.attr[7] == "z"


def capacity(lvs: list[LogicalVolume], pool: ThinPool) -> tuple[int, int]:
    """(total, free) GiB of the thin pool, free counting every volume as full.

    As with the file backend, nothing is over-committed: what a volume may still write
    (its virtual size less what it has) is promised. A snapshot is never written, so it
    promises nothing; what it holds is in the pool's data_percent already."""
    own = find_pool(lvs, pool)
    free = own.size - own.allocated
    promised = sum(max(0, lv.size - lv.allocated) for lv in ours(lvs, pool, VOLUME_PREFIX)
                   .values())
    return own.size // GIB, max(0, free - promised) // GIB


# the backend a node uses -------------------------------------------------------------------
def backend_of(storage_path: object, storage_vg: object) -> str | None:
    """'lvm' when a volume group is configured, 'file' for a storage path alone, None for
    a node that keeps no volumes."""
    if storage_vg:
        ThinPool.parse(storage_vg)
        return "lvm"
    return "file" if storage_path else None


def image_blockdevs(image: str) -> list[str]:
    """The two --blockdev values an export's daemon opens its volume with: an LV device
    (/dev/...) as raw on host_device, with the host page cache bypassed so a thin
    snapshot taken under a live export holds every write it acknowledged; a file as
    qcow2 on file."""
    quoted = image.replace(",", ",,")
    if image.startswith("/dev/"):
        return [f"driver=host_device,node-name=file0,filename={quoted},cache.direct=on",
                "driver=raw,node-name=vol0,file=file0"]
    return [f"driver=file,node-name=file0,filename={quoted}",
            "driver=qcow2,node-name=vol0,file=file0"]
