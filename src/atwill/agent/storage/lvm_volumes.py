"""The LVM thin backend: each volume a thin LV, each snapshot a thin snapshot.

The same calls as the file backend's VolumeStore (volumes.py), so the storage manager
converges either; names, command lines and `lvs` parsing are in core/lvm.py. A volume's
path is its device node, which the export's daemon opens as raw on host_device
(core/lvm.image_blockdevs). Every multi-step change runs with an undo stack: an LV made
by a step that failed later is removed, so a failure never leaves a volume behind that
looks whole. Snapshots and clones are thin snapshots (instant, sharing blocks until
written, each outliving its origin), taken even while the volume is exported: the daemon
writes with O_DIRECT, and LVM suspends the device (flushing it) for the snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor import disks
from atwill.core import lvm
from atwill.hostlib.run import HostCommandError, Reverter, run

log = logging.getLogger("atwill.agent.storage")
COPY_TIMEOUT = 3600
LVM_TIMEOUT = 120

Runner = Callable[..., Any]


class LvmStore:
    """Volumes and snapshots as thin LVs of one pool; root keeps the node's working files
    (exports' directories, the image cache, uploads)."""

    backend = "lvm"
    formats = ("raw",)
    # A thin snapshot is taken by LVM even under a running export.
    snapshots_live = True

    def __init__(self, pool: lvm.ThinPool, root: Path, runner: Runner = run) -> None:
        self.pool, self.root, self._run = pool, root, runner
        # The last listing lvs gave: the heartbeat's report and inventory use it when lvs
        # fails for a moment (a node whose report failed would look down, and be fenced).
        self._listed: list[lvm.LogicalVolume] | None = None
        self._listing = threading.Lock()

    # names ---------------------------------------------------------------------------------
    def volume(self, ident: str) -> Path:
        return Path(self.pool.device(lvm.volume_lv(ident)))

    def snapshot(self, ident: str) -> Path:
        return Path(self.pool.device(lvm.snapshot_lv(ident)))

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _lvs(self) -> list[lvm.LogicalVolume]:
        """The volume group's LVs now; the last listing when lvs fails (it raises when
        there never was one)."""
        try:
            listed = lvm.parse_lvs(self._run(lvm.lvs_argv(self.pool),
                                             timeout=LVM_TIMEOUT).stdout)
        except (HostCommandError, ValueError) as err:
            with self._listing:
                if self._listed is None:
                    raise
                log.warning("lvs failed (%s); using its last listing", err)
                return self._listed
        with self._listing:
            self._listed = listed
        return listed

    def volumes(self) -> set[str]:
        return set(lvm.ours(self._lvs(), self.pool, lvm.VOLUME_PREFIX))

    def snapshots(self) -> set[str]:
        return set(lvm.ours(self._lvs(), self.pool, lvm.SNAPSHOT_PREFIX))

    # changes -------------------------------------------------------------------------------
    def create_blank(self, ident: str, size_gb: int) -> None:
        self._lvm(lvm.create_argv(self.pool, lvm.volume_lv(ident), size_gb))

    def create_from_image(self, ident: str, size_gb: int, image: Path, disk_format: str) -> None:
        """A thin LV holding image, refused before anything is made when its virtual size
        (read here) exceeds size_gb."""
        fmt = disks.verify_image(image, disk_format)
        disks.check_fits(image, fmt, size_gb, "volume")
        with Reverter() as undo:
            self.create_blank(ident, size_gb)
            undo.add(lambda: self.delete_volume(ident))
            self._run(lvm.write_image_argv(str(image), fmt, str(self.volume(ident))),
                      timeout=COPY_TIMEOUT)

    def create_from_volume(self, ident: str, size_gb: int, source: str) -> None:
        self._clone(lvm.volume_lv(source), ident, size_gb)

    def create_from_snapshot(self, ident: str, size_gb: int, snapshot: str) -> None:
        self._clone(lvm.snapshot_lv(snapshot), ident, size_gb)

    def _clone(self, origin: str, ident: str, size_gb: int) -> None:
        """A thin snapshot of origin as the new volume, grown to size_gb if larger."""
        source = lvm.owned(self._lvs(), self.pool, origin)
        if source is None:  # untagged or outside the pool: not ours, whatever its name
            raise FileNotFoundError(f"{origin} is not on this storage node")
        made = source.size
        if made > size_gb * lvm.GIB:
            raise disks.ImageTooLargeError(
                f"{origin} refused on this node: its virtual size is {made} bytes, larger "
                f"than the volume of {size_gb} GiB.")
        with Reverter() as undo:
            self._lvm(lvm.snapshot_argv(self.pool, origin, lvm.volume_lv(ident)))
            undo.add(lambda: self.delete_volume(ident))
            if size_gb * lvm.GIB > made:
                self._lvm(lvm.extend_argv(self.pool, lvm.volume_lv(ident), size_gb))

    def take_snapshot(self, volume: str, snapshot: str) -> None:
        self._lvm(lvm.snapshot_argv(self.pool, lvm.volume_lv(volume), lvm.snapshot_lv(snapshot)))

    def resize(self, ident: str, size_gb: int) -> None:
        """Grow the LV (opened or not: an export's daemon is told after, see reconcile)."""
        self._lvm(lvm.extend_argv(self.pool, lvm.volume_lv(ident), size_gb))

    def grow_under_export(self, ident: str, size_gb: int) -> None:
        """Before a running export's daemon grows its node: the LV must be larger first."""
        if self.volume_size(ident) < size_gb * lvm.GIB:
            self.resize(ident, size_gb)

    def volume_size(self, ident: str) -> int:
        """The volume's virtual size in bytes."""
        name = lvm.volume_lv(ident)
        if (lv := lvm.owned(self._lvs(), self.pool, name)) is not None:
            return lv.size
        raise FileNotFoundError(f"{name} is not on this storage node")

    def delete_volume(self, ident: str) -> None:
        self._remove(lvm.volume_lv(ident))

    def delete_snapshot(self, ident: str) -> None:
        self._remove(lvm.snapshot_lv(ident))

    def _remove(self, name: str) -> None:
        if lvm.owned(self._lvs(), self.pool, name) is not None:  # only a tagged LV of ours
            self._lvm(lvm.remove_argv(self.pool, name))

    def copy_to_qcow2(self, ident: str, target: Path) -> None:
        """The volume as it is at this instant into a new qcow2 at target (an upload's
        copy): a thin snapshot taken, copied out, removed."""
        name = lvm.copy_lv(ident)
        self._remove(name)  # a crash's leftover
        with Reverter() as undo:
            self._lvm(lvm.snapshot_argv(self.pool, lvm.volume_lv(ident), name))
            undo.add(lambda: self._remove(name))
            self._run(lvm.copy_out_argv(self.pool.device(name), str(target)),
                      timeout=COPY_TIMEOUT)
            target.chmod(0o600)
        self._remove(name)

    def activate(self, ident: str) -> None:
        """Make sure the volume's device exists (after a reboot) before it is exported."""
        if not self.volume(ident).exists():
            self._lvm(lvm.activate_argv(self.pool, lvm.volume_lv(ident)))

    def _lvm(self, argv: list[str]) -> None:
        self._run(argv, timeout=LVM_TIMEOUT)

    # report --------------------------------------------------------------------------------
    def inventory(self, sizes: Mapping[str, int] | None = None) -> dict[str, Any]:
        """The inventory's "storage": the thin pool's size and what is still free in it
        (none, with the reason, when the pool cannot be read: no volume is placed here)."""
        body: dict[str, Any] = {"path": str(self.root), "backend": self.backend,
                                "volume_group": self.pool.vg, "thin_pool": self.pool.pool,
                                "formats": list(self.formats)}
        try:
            total, free = lvm.capacity(self._lvs(), self.pool)
        except (HostCommandError, LookupError, ValueError) as err:
            return {**body, "total_gb": 0, "free_gb": 0, "error": str(err)[:500]}
        return {**body, "total_gb": total, "free_gb": free}


def pool_problem(pool: lvm.ThinPool, runner: Runner = run) -> str | None:
    """Why volumes cannot be kept in pool on this host, if they cannot (checked at join)."""
    try:
        lvm.find_pool(lvm.parse_lvs(runner(lvm.lvs_argv(pool), timeout=LVM_TIMEOUT).stdout),
                      pool)
    except LookupError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - the operator reads why
        return f"cannot list the logical volumes of {pool.vg}: {err}"
    return None
