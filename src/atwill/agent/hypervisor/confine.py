"""Hand an instance's files to the unprivileged ids its QEMU becomes (-runas uid:gid).

QEMU opens everything as root, then drops to a user of the instance's own; but it opens
some files again later by path (a disk reopened read-only, then read-write, around a
suspend or migration), so that user must be able to: the instance's disk and config drive
become its own (0600/0400), the base image readable by the image's group (0640), and the
directories on the way searchable but not listable (0711). Everything else in the
instance's directory stays root's and 0600: a user who owned the directory could replace
spec.json, which names the files the next start opens as root.

What that user can write, the disk's qcow2 header above all, is never trusted by root:
QEMU gets the backing image explicitly (spec.py), the header is checked before each start
and snapshot (disks.verify_overlay), the snapshot's qemu-img runs as the instance's user,
and no process of that user survives its QEMU (kill_strays).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import stat
from pathlib import Path

from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec
from atwill.core import guest_ids
from atwill.hostlib import accounts

log = logging.getLogger("atwill.agent.qemu")


def confine(spec: InstanceSpec, paths: InstancePaths, instances_dir: Path) -> str | None:
    """Prepare the files and return QEMU's -runas "uid:gid"; None: it stays root (why is
    logged), when this process is not root or a file lies where no other user can reach."""
    if os.geteuid() != 0:
        return None
    # Ours to open up (made 0700 under the agent's umask): pass through, never list.
    instances_dir.chmod(0o711)
    paths.directory.chmod(0o711)
    # Booted from a volume: no disk and no base image here, only what NBD brings.
    local = [paths.disk, spec.image_path] if spec.image_path is not None else []
    files = local + ([spec.config_drive] if spec.config_drive else [])
    blocked = [str(f.parent) for f in files if not accounts.searchable(f.parent)]
    if blocked:
        log.warning("instance %s: QEMU runs as root, since other users cannot pass through "
                    "%s (each directory up to / needs o+x)", spec.uuid, ", ".join(blocked))
        return None
    owner = _owner(paths.disk)
    uid = instance_uid(spec.uuid, paths.disk, instances_dir)
    gid = image_gid(spec.image_path) if spec.image_path is not None \
        else guest_ids.pick(f"volume:{spec.uuid}", _known_group)
    if owner is not None:
        # A user picked just now is none of a running process (instance_uid): only one
        # the disk already had can have strays, and one scan of /proc is spared.
        kill_strays(uid)
    if spec.image_path is not None:
        _own(paths.disk, uid, gid, 0o600)
    if spec.config_drive is not None and spec.config_drive.exists():
        # (A missing one is QEMU's to report, as it is when QEMU stays root.)
        _own(spec.config_drive, uid, gid, 0o400)
    # Root's alone: the spec names what the next start opens as root; the console may
    # hold passwords cloud-init printed. QEMU appends to the console file made here.
    paths.spec.chmod(0o600)
    console = spec.console_log or paths.console_log
    os.close(os.open(console, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    console.chmod(0o600)
    if spec.image_path is not None:
        image = spec.image_path.stat()
        if not image.st_mode & stat.S_IROTH and (image.st_gid != gid or
                                                  stat.S_IMODE(image.st_mode) != 0o640):
            # A base image nobody else may read (the node's own cache) is lent to its
            # group, once: changing it again each start moved its ctime, so the cached
            # `qemu-img info` of a file that never changes was run again every start.
            os.chown(spec.image_path, -1, gid)
            spec.image_path.chmod(0o640)
    return f"{uid}:{gid}"


def instance_uid(uuid: str, disk: Path, instances_dir: Path) -> int:
    """The instance's user: the one its disk already has, else a free one of our block
    (no other instance's, no running process's, none the name service knows).

    The id is hashed from the node's instances directory too: where nodes share one
    process table (the lab's hosts), an instance rebuilt on another node must not get
    the user of its old copy, whose removal kills that user's processes."""
    owner = _owner(disk)
    if owner is not None:
        return owner
    taken = {_owner(other / disk.name) for other in _siblings(instances_dir, uuid)}
    taken |= running_uids()
    return guest_ids.pick(f"{instances_dir.resolve()}/{uuid}",
                          lambda uid: uid in taken or _known_user(uid))


def image_gid(image: Path) -> int:
    """The base image's group: the one it has, else a free one among the cached images."""
    current = image.stat().st_gid
    if guest_ids.in_block(current):
        return current
    taken = {other.stat().st_gid for other in image.parent.iterdir()
             if other != image and other.is_file()}
    return guest_ids.pick(image.name, lambda gid: gid in taken or _known_group(gid))


def disk_owner(disk: Path) -> int | None:
    """The instance user that owns disk, if its QEMU was confined."""
    return _owner(disk)


def kill_strays(uid: int) -> list[int]:
    """SIGKILL every process of an instance's user: an escaped guest's QEMU may have left
    children that would go on writing its disk after QEMU is gone. The uid is the
    instance's alone, so these are the instance's processes and nobody else's."""
    killed = []
    for pid, owner in _processes():
        if owner == uid and guest_ids.in_block(uid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
    if killed:
        log.warning("killed %d leftover process(es) of instance user %d", len(killed), uid)
    return killed


def running_uids() -> set[int]:
    """The real uids of every running process."""
    return {owner for _, owner in _processes()}


def _processes() -> list[tuple[int, int]]:
    # From status, not the owner of /proc/PID: a process that dropped root is not
    # dumpable, and the kernel then shows its /proc entries as root's. Two fields are
    # found in the bytes, not every line parsed: this runs on the way to each VM's start.
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status", "rb") as data:
                    status = data.read()
            except OSError:
                continue
            if _field(status, b"State") == b"Z":
                continue  # exited, only not reaped: it runs nothing
            uid = _field(status, b"Uid")
            if uid is not None:
                found.append((int(name), int(uid)))
    return found


def _field(status: bytes, name: bytes) -> bytes | None:
    """The first word of a /proc/PID/status field, or None."""
    start = status.find(b"\n" + name + b":")
    if start < 0:
        return None
    end = status.find(b"\n", start + 1)
    words = status[start + len(name) + 2:end if end >= 0 else None].split()
    return words[0] if words else None


def _known_user(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def _known_group(gid: int) -> bool:
    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


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
