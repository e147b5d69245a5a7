"""Hand an instance's files to the unprivileged ids its QEMU becomes (-runas uid:gid).

QEMU opens everything as root, then drops to a user of the instance's own; but it opens
some files again later by path (a disk reopened read-only, then read-write, around a
suspend or migration), so that user must be able to: the instance's disk and config drive
become its own (0600/0400), the base image readable by the image's group (0640), and the
directories on the way searchable but not listable (0711). Everything else in the
instance's directory stays root's and 0600: a user who owned the directory could replace
spec.json, which names the files the next start opens as root.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from atwill.agent.host import accounts
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec
from atwill.core import guest_ids

log = logging.getLogger("atwill.agent.qemu")


def confine(spec: InstanceSpec, paths: InstancePaths, instances_dir: Path) -> str | None:
    """Prepare the files and return QEMU's -runas "uid:gid"; None: it stays root (why is
    logged), when this process is not root or a file lies where no other user can reach."""
    if os.geteuid() != 0:
        return None
    files = [paths.disk, spec.image_path] + ([spec.config_drive] if spec.config_drive else [])
    blocked = [str(f.parent) for f in files if not accounts.searchable(f.parent)]
    if blocked:
        log.warning("instance %s: QEMU runs as root, since other users cannot pass through "
                    "%s (each directory up to / needs o+x)", spec.uuid, ", ".join(blocked))
        return None
    uid = instance_uid(spec.uuid, paths.disk, instances_dir)
    gid = image_gid(spec.image_path)
    paths.directory.chmod(0o711)
    _own(paths.disk, uid, gid, 0o600)
    if spec.config_drive is not None and spec.config_drive.exists():
        # (A missing one is QEMU's to report, as it is when QEMU stays root.)
        _own(spec.config_drive, uid, gid, 0o400)
    if not spec.image_path.stat().st_mode & stat.S_IROTH:
        # A base image nobody else may read (the node's own cache) is lent to its group.
        os.chown(spec.image_path, -1, gid)
        spec.image_path.chmod(0o640)
    for private in (paths.spec, paths.console_log):
        if private.exists():
            private.chmod(0o600)
    return f"{uid}:{gid}"


def instance_uid(uuid: str, disk: Path, instances_dir: Path) -> int:
    """The instance's user: the one its disk already has, else a free one of our block."""
    owner = _owner(disk)
    if owner is not None:
        return owner
    taken = {_owner(other / disk.name) for other in _siblings(instances_dir, uuid)}
    return guest_ids.pick(uuid, {t for t in taken if t is not None})


def image_gid(image: Path) -> int:
    """The base image's group: the one it has, else a free one among the cached images."""
    current = image.stat().st_gid
    if guest_ids.in_block(current):
        return current
    taken = {other.stat().st_gid for other in image.parent.iterdir()
             if other != image and other.is_file()}
    return guest_ids.pick(image.name, taken)


def _owner(path: Path) -> int | None:
    try:
        uid = path.stat().st_uid
    except OSError:
        return None
    return uid if guest_ids.in_block(uid) else None


def _siblings(instances_dir: Path, uuid: str) -> list[Path]:
    if not instances_dir.is_dir():
        return []
    return [d for d in instances_dir.iterdir() if d.name != uuid and d.is_dir()]


def _own(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    path.chmod(mode)
