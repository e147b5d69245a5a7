"""The storage node's converge: volumes, snapshots and exports as the desired state says.

Order matters for safety: exports nobody wants are revoked first (fencing must not wait
for a slow copy), then what is not wanted is deleted, then volumes are made (volumes with
no source or an image first, so the clones and volumes from snapshots of this same
desired state find their source), their snapshots taken, grown, and exported.
A volume that failed to be made, a snapshot that failed, an extend that failed are not
tried again (Cinder's error states are final until the user deletes); a failed export is
tried again at each converge (a port taken by someone else passes).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor import disks
from atwill.agent.lanes import Lanes
from atwill.agent.storage.exports import PORTS, Export, Exports, heir, psk_lines
from atwill.agent.storage.lvm_volumes import LvmStore
from atwill.agent.storage.uploads import Backup, Controller, VolumeUploads
from atwill.agent.storage.volumes import GIB, VolumeStore, check_id, making
from atwill.core.volume_handover import identities

log = logging.getLogger("atwill.agent.storage")

# fetch(image source, destination path): the image's bytes written to the path.
FetchImage = Callable[[dict[str, Any], Path], None]


def export_host(desired: dict[str, Any]) -> str:
    """Where exports listen: the node's overlay address, else the loopback (all-in-one)."""
    overlay = desired.get("overlay") or {}
    if overlay.get("kind") not in (None, "none") and overlay.get("address"):
        return str(overlay["address"])
    return "127.0.0.1"


def free_gb(available: int, files: list[tuple[int, int]]) -> int:
    """GiB still free once every volume and snapshot (virtual, allocated bytes) is full."""
    promised = sum(max(0, virtual - allocated) for virtual, allocated in files)
    return max(0, available - promised) // GIB


class StorageManager:
    """The volumes of one storage path (or of an LVM thin pool, with its working files
    under that path), converged and reported."""

    def __init__(self, path: Path, ca: Path, cert: Path, key: Path, fetch: FetchImage,
                 ports: range = PORTS, uploader: Controller | None = None,
                 store: VolumeStore | LvmStore | None = None) -> None:
        self.store: VolumeStore | LvmStore = store or VolumeStore(path)
        self.exports = Exports(path / ".exports", ca, cert, key, ports)
        self.cache_dir = path / ".images"
        self.fetch = fetch
        self._guard = threading.Lock()
        self._busy: dict[str, str] = {}  # volume id -> "creating" | "extending"
        self._failed: dict[str, str] = {}  # volume id -> why it is in error
        self._failed_size: dict[str, int] = {}  # volume id -> the extend that failed
        self._snap_failed: dict[str, str] = {}
        self._export_failed: dict[tuple[str, str], str] = {}
        # The attachments each failed export was wanted for (its entry's "attachments"):
        # the attempts its error is of; the controller fails no other attach with it.
        self._export_tried: dict[tuple[str, str], list[str]] = {}
        self._sizes: dict[str, int] = {}  # volume id -> virtual size in bytes
        self._owner: dict[str, str] = {}  # snapshot id -> its volume id
        self._wanted_gb: dict[str, int] = {}  # volume id -> its size in the desired state
        self._latest: dict[str, dict[str, Any]] = {}  # the last desired volumes, by id
        self._reported: dict[str, dict[str, Any]] = {}  # the last report made
        # Copies take minutes: each volume's work runs in a lane of its own, so the agent
        # (and a revocation, which converge does first and at once) never waits for one.
        self.lanes = Lanes(workers=2)
        self._export_lock = threading.Lock()
        # Volumes copied into images (os-volume_upload_image), sent with uploader.
        self.uploads = VolumeUploads(path / ".uploads", uploader)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no volume work runs; whether that happened within timeout."""
        return self.lanes.wait(timeout)

    # converge -------------------------------------------------------------------
    def converge(self, desired: dict[str, Any], host: str) -> None:
        """Make the storage path hold what desired (the "storage" key) lists, and no more."""
        volumes = {check_id(v["id"]): v for v in desired.get("volumes") or []}
        snapshots = {check_id(s): vid for vid, v in volumes.items()
                     for s in v.get("snapshots") or []}
        self.store.prepare()
        self.exports.set_crl(desired.get("crl"))
        self._owner = snapshots
        self._wanted_gb = {vid: int(v["size_gb"]) for vid, v in volumes.items()}
        with self._export_lock:
            # Under the lock: no lane serves an export from the wish this one replaces.
            self._latest = volumes
            self._revoke(volumes)
        self._delete(volumes, snapshots)
        self.uploads.retain(volumes)
        first = [v for v in volumes.values() if (v.get("source") or {}).get("type")
                 in (None, "image")]
        for volume in first + [v for v in volumes.values() if v not in first]:
            # A busy volume is brought to what is wanted then by a later converge.
            self.lanes.submit(volume["id"], self._converge_volume, volume, volumes, snapshots,
                              host)
        disks.gc(self.cache_dir, self._images_wanted(volumes))

    def _revoke(self, volumes: dict[str, dict[str, Any]]) -> None:
        records = self.exports.records()
        for (vid, node), export in records.items():
            entries = (volumes.get(vid) or {}).get("exports") or []
            wanted = {e["node_id"] for e in entries}
            successor = heir(export, entries, records) if node not in wanted else None
            if successor is not None:  # a live migration ended: same daemon port
                self._hand_over(export, successor)
            elif node not in wanted:
                self.exports.revoke(vid, node)
                self._forget_failure((vid, node))
                log.info("revoked the export of volume %s to node %s", vid, node)
        # An export that never ran has no record: its failure goes once it is not wanted,
        # or a new attach to that node would be failed by the old error (attach_outcomes).
        for vid, node in list(self._export_failed):
            if node not in {e["node_id"] for e in (volumes.get(vid) or {}).get("exports") or []}:
                self._forget_failure((vid, node))

    def _forget_failure(self, key: tuple[str, str]) -> None:
        self._export_failed.pop(key, None)
        self._export_tried.pop(key, None)

    def _hand_over(self, export: Export, entry: dict[str, Any]) -> None:
        try:
            self.store.activate(export.volume_id)
            self.exports.hand_over(export, entry["node_id"], entry["client_cn"],
                                   psk_lines(entry.get("psk")),
                                   self.store.volume(export.volume_id))
        except Exception as err:  # noqa: BLE001 - the old one is revoked; retried by ensure
            log.warning("export of volume %s handed to %s: %s", export.volume_id,
                        entry.get("client_cn"), err)

    def _delete(self, volumes: dict[str, Any], snapshots: dict[str, str]) -> None:
        for sid in self.store.snapshots() - snapshots.keys():
            self.store.delete_snapshot(sid)
            log.info("deleted snapshot %s", sid)
        for vid in self.store.volumes() - volumes.keys():
            self.store.delete_volume(vid)
            log.info("deleted volume %s", vid)
        for table in (self._failed, self._failed_size, self._sizes):
            for vid in set(table) - volumes.keys():
                table.pop(vid)
        for sid in set(self._snap_failed) - snapshots.keys():
            self._snap_failed.pop(sid)

    def _converge_volume(self, volume: dict[str, Any], volumes: dict[str, Any],
                         snapshots: dict[str, str], host: str) -> None:
        vid = volume["id"]
        if vid in self._failed and vid not in self._failed_size:
            return  # making it failed: error until deleted
        try:
            if vid not in self.store.volumes():
                if not self._create(volume, volumes, snapshots):
                    return
            if vid not in self._sizes:
                self._sizes[vid] = self.store.volume_size(vid)
            self._exports(volume, host)
            self._snapshots(volume)
            self._extend(volume)
            self.uploads.run(volume, self.store.volume(vid), self._backup(vid))
        except Exception as err:  # noqa: BLE001 - one volume's failure is its own
            log.warning("volume %s: %s", vid, err)
            if vid not in self.store.volumes():
                self._failed[vid] = str(err)

    def _create(self, volume: dict[str, Any], volumes: dict[str, Any],
                snapshots: dict[str, str]) -> bool:
        """Make the volume; False when its source is not there yet (made later)."""
        vid, size, source = volume["id"], int(volume["size_gb"]), volume.get("source") or {}
        kind = source.get("type")
        if kind == "volume" and check_id(source["id"]) not in self.store.volumes() \
                or kind == "snapshot" and check_id(source["id"]) not in self.store.snapshots():
            if source["id"] in volumes or source["id"] in snapshots:
                return False
            raise FileNotFoundError(f"{kind} {source['id']} is not on this storage node")
        with self._state(vid, "creating"):
            if kind is None:
                self.store.create_blank(vid, size)
            elif kind == "image":
                image = self._image(source)
                self.store.create_from_image(vid, size, image, source.get("disk_format", ""))
            elif kind == "volume":
                self.store.create_from_volume(vid, size, source["id"])
            elif kind == "snapshot":
                self.store.create_from_snapshot(vid, size, source["id"])
            else:
                raise ValueError(f"unknown volume source {kind!r}")
        log.info("made volume %s (%s GiB, from %s)", vid, size, kind or "nothing")
        return True

    def _image(self, source: dict[str, Any]) -> Path:
        self.cache_dir.mkdir(mode=0o700, exist_ok=True)
        return disks.ensure_cached(self.cache_dir, source["id"], source.get("checksum"),
                                   lambda dest: self.fetch(source, dest),
                                   source.get("os_hash_value"))

    def _snapshots(self, volume: dict[str, Any]) -> None:
        vid = volume["id"]
        present = self.store.snapshots()
        for sid in volume.get("snapshots") or []:
            if sid in present or sid in self._snap_failed:
                continue
            try:
                self._take(vid, sid)
            except Exception as err:  # noqa: BLE001 - the snapshot is in error, not the volume
                log.warning("snapshot %s of volume %s: %s", sid, vid, err)
                self._snap_failed[sid] = str(err)

    def _take(self, vid: str, sid: str) -> None:
        live = self._live(vid)
        with self._state(sid, "creating"):
            if live is None or self.store.snapshots_live:
                self.store.take_snapshot(vid, sid)
                return
            # Exported: its daemon copies it at one instant, while its client writes on.
            with making(self.store.snapshot(sid)) as partial:
                self.store.blank_like(vid, partial)
                self.exports.backup(live, partial)

    def _extend(self, volume: dict[str, Any]) -> None:
        vid, wanted = volume["id"], int(volume["size_gb"]) * GIB
        if wanted <= self._sizes[vid] or self._failed_size.get(vid) == wanted:
            return
        try:
            with self._state(vid, "extending"):
                live = self._live(vid)
                if live is None:
                    self.store.resize(vid, int(volume["size_gb"]))
                else:
                    self.store.grow_under_export(vid, int(volume["size_gb"]))
                    self.exports.resize(live, wanted)
        except Exception as err:
            self._failed[vid], self._failed_size[vid] = f"extend failed: {err}", wanted
            raise
        self._failed.pop(vid, None)
        self._failed_size.pop(vid, None)
        self._sizes[vid] = wanted

    def _exports(self, volume: dict[str, Any], host: str) -> None:
        # The latest wish, not the one the lane started with: an export revoked while the
        # volume was being copied must not be served again (fencing).
        for export in self._wanted_exports(volume["id"]):
            key = (volume["id"], export["node_id"])
            try:
                with self._export_lock:
                    if export not in self._wanted_exports(volume["id"]):
                        continue  # revoked meanwhile
                    self.store.activate(volume["id"])
                    self.exports.ensure(volume["id"], export["node_id"], export["client_cn"],
                                        host, self.store.volume(volume["id"]),
                                        psk_lines(export.get("psk")))
                self._forget_failure(key)
            except Exception as err:  # noqa: BLE001 - tried again at the next converge
                log.warning("export of volume %s to %s: %s", volume["id"],
                            export.get("client_cn"), err)
                self._export_failed[key] = str(err)
                tried = export.get("attachments")
                if isinstance(tried, list):  # (a controller that names none: unnamed)
                    self._export_tried[key] = [str(a) for a in tried]
                else:
                    self._export_tried.pop(key, None)

    def _backup(self, vid: str) -> Backup | None:
        """How to copy an exported volume at one instant (through its daemon), or None.
        An LV is always copied through a thin snapshot of it (uploads read qcow2)."""
        if isinstance(self.store, LvmStore):
            store = self.store
            return lambda target: store.copy_to_qcow2(vid, target)
        live = self._live(vid)
        if live is None:
            return None

        def backup(target: Path) -> None:
            self.store.blank_like(vid, target)
            self.exports.backup(live, target)
        return backup

    def _wanted_exports(self, vid: str) -> list[dict[str, str]]:
        return list((self._latest.get(vid) or {}).get("exports") or [])

    def _live(self, vid: str) -> Export | None:
        for (volume, _), export in self.exports.records().items():
            if volume == vid and self.exports.running(export) is not None:
                return export
        return None

    def _images_wanted(self, volumes: dict[str, Any]) -> set[str]:
        on_disk = self.store.volumes()
        return {v["source"]["id"] for vid, v in volumes.items()
                if (v.get("source") or {}).get("type") == "image" and vid not in on_disk
                and vid not in self._failed}

    def _state(self, ident: str, state: str) -> _Busy:
        return _Busy(self, ident, state)

    # report ---------------------------------------------------------------------
    def report(self) -> dict[str, dict[str, Any]]:
        """The heartbeat's "volumes": each volume on disk (or being made, or failed)."""
        with self._guard:
            busy = dict(self._busy)
        try:
            on_disk, snaps = self.store.volumes(), self.store.snapshots()
        except Exception as err:  # noqa: BLE001 - a failed heartbeat would look like a dead node
            log.warning("cannot list the volumes (%s); the last report stands", err)
            return self._reported
        exports: dict[str, dict[str, Any]] = {}
        for (vid, node), export in self.exports.records().items():
            if self.exports.running(export) is not None:
                exports.setdefault(vid, {})[node] = {"port": export.port, "host": export.host,
                                                     "identities": identities(export.psk)}
        # Copies (lanes change both meanwhile), the attempts before the errors, which a
        # lane writes the other way round: an error never goes with a newer attempt.
        export_tried = dict(self._export_tried)
        export_failed = dict(self._export_failed)
        volume_failed = dict(self._failed)  # a lane's delete pops it meanwhile
        out: dict[str, dict[str, Any]] = {}
        for vid in on_disk | volume_failed.keys() | {i for i in busy if i not in self._owner}:
            entry: dict[str, Any] = {"state": busy.get(vid) or "available",
                                     "size_gb": self._size_gb(vid),
                                     "snapshots": {}, "exports": exports.get(vid, {})}
            if vid in volume_failed:
                entry.update(state="error", error=volume_failed[vid])
            failed = {n: m for (v, n), m in export_failed.items() if v == vid}
            if failed:
                entry["export_errors"] = failed
                # The attempts each error is of (one named by none: the controller takes
                # it as of any attach of that export, as before).
                tried = {n: list(export_tried[(vid, n)]) for n in failed
                         if (vid, n) in export_tried}
                if tried:
                    entry["export_error_attachments"] = tried
            out[vid] = entry
        for sid, vid in self._owner.items():
            state = busy.get(sid) or ("error" if sid in self._snap_failed
                                      else "available" if sid in snaps else None)
            if state and vid in out:
                out[vid]["snapshots"][sid] = state
        self._reported = out
        return out

    def _size_gb(self, vid: str) -> int:
        size = self._sizes.get(vid)  # one read: a lane's delete pops it meanwhile
        if size is not None:
            return size // GIB
        return self._wanted_gb.get(vid, 0)

    def inventory(self) -> dict[str, Any]:
        """The inventory's "storage": where, how large, how much is still free."""
        if isinstance(self.store, LvmStore):
            return self.store.inventory()
        files = []
        for vid in self.store.volumes():
            allocated = _allocated(self.store.volume(vid))
            files.append((self._sizes.get(vid, allocated), allocated))
        return storage_inventory(self.store.root, files)

    def still_exported(self, desired: dict[str, Any] | None) -> dict[str, Any] | None:
        """desired with only the exports that still run: an agent starting from its cache
        must not serve again a volume the controller may have revoked meanwhile (fencing).
        A cached `"storage": null` (no volumes managed here yet) stays None."""
        if desired is None:
            return None
        running = {key for key, export in self.exports.records().items()
                   if self.exports.running(export) is not None}
        return {**desired, "volumes": [
            {**v, "exports": [e for e in v.get("exports") or []
                              if (v["id"], e["node_id"]) in running]}
            for v in desired.get("volumes") or []]}

    def revoke_all(self) -> None:
        """Stop every export (the node left its cloud); the volumes stay."""
        for vid, node in self.exports.records():
            self.exports.revoke(vid, node)


class _Busy:
    """Marks ident as busy (creating, extending) in the report while the work runs."""

    def __init__(self, manager: StorageManager, ident: str, state: str) -> None:
        self.manager, self.ident, self.state = manager, ident, state

    def __enter__(self) -> None:
        with self.manager._guard:
            self.manager._busy[self.ident] = self.state

    def __exit__(self, *exc: object) -> None:
        with self.manager._guard:
            self.manager._busy.pop(self.ident, None)


def storage_inventory(root: Path, files: Sequence[tuple[int, int]] = ()) -> dict[str, Any]:
    """A storage node's inventory entry for root, given its files' (virtual, allocated)."""
    # Before the first converge (at join) root may not exist yet: its file system does.
    fs = os.statvfs(next(p for p in (root, *root.parents) if p.exists()))
    return {"path": str(root), "total_gb": fs.f_blocks * fs.f_frsize // GIB,
            "free_gb": free_gb(fs.f_bavail * fs.f_frsize, list(files)), "formats": ["qcow2"],
            "backend": "file"}


def _allocated(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0
