"""System accounts that the node's helpers (dnsmasq, metadata) run as instead of root.

Each helper gets an account of its own, so a compromised one cannot signal, trace or read
the files of another (QEMU gets a numeric id per instance: core.guest_ids). The accounts
are made on first use with `useradd --system`; where that is impossible (not root, no
useradd) the helper keeps running as the agent's user and `unprivileged` says so with None.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("atwill.agent.accounts")

DHCP_USER = "atwill-dhcp"
METADATA_USER = "atwill-meta"
_made: dict[str, Account | None] = {}
_guard = threading.Lock()


@dataclass(frozen=True)
class Account:
    """A system account: its name and numeric ids."""

    name: str
    uid: int
    gid: int


def _lookup(name: str) -> Account | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return Account(name, entry.pw_uid, entry.pw_gid)


def unprivileged(name: str) -> Account | None:
    """The account `name`, made if missing; None when this process cannot switch to it
    (asked again next time: a passing failure does not leave a helper root for good)."""
    with _guard:
        if _made.get(name) is None:
            _made[name] = _ensure(name)
        return _made[name]


def _ensure(name: str) -> Account | None:
    if os.geteuid() != 0:
        return None  # an unprivileged agent's helpers already run without root
    account = _lookup(name)
    if account is not None:
        return account
    try:
        # A lab's nodes share /etc/passwd: another node may add the account meanwhile,
        # and useradd then fails with "already exists" (9); the lookup below decides.
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        "--comment", "atwill node helper", name],
                       capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot add system account %s (%s): its helper runs as root", name, exc)
        return None
    account = _lookup(name)
    if account is None:
        log.warning("cannot add system account %s: its helper runs as root", name)
    return account


def searchable(directory: Path) -> bool:
    """Whether any user may pass through directory and each of its parents (o+x), which an
    unprivileged helper needs to open a file inside by its path."""
    path = directory.resolve()
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True


def share_directory(directory: Path, account: Account | None) -> None:
    """Let account read directory (0750, its group); with no account, root alone (0700)."""
    directory.mkdir(parents=True, exist_ok=True)
    if account is None:
        os.chown(directory, 0, 0)
        directory.chmod(0o700)
        return
    os.chown(directory, 0, account.gid)
    directory.chmod(0o750)


def publish(path: Path, text: str) -> None:
    """Replace path with text, readable by the group of its directory (share_directory's
    helper account) and by nobody else; written aside first, so a reader never sees half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, text.encode())
        os.fchown(fd, 0, path.parent.stat().st_gid)
        os.fchmod(fd, 0o640)
    finally:
        os.close(fd)
    tmp.replace(path)
