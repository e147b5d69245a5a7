"""Bigger UDP socket buffers for a running wireguard-go, which leaves the kernel's defaults.

wireguard-go v0.0.20220316 (Debian 12's) reads its UDP socket with one goroutine: with
the default 208 KiB receive buffer (net.core.rmem_default) a burst of the overlay's
packets overflows it whenever that goroutine waits for a CPU, the kernel drops them
(UdpRcvbufErrors) and every TCP connection inside the tunnel backs off. Measured in a
two-node lab on this 2-core machine: tens of thousands of drops a minute and one iperf3
stream at 0.17-0.40 Gbit/s, NBD reads of 1 MiB at 15-30 MiB/s. Later wireguard-go
releases set 7 MiB themselves (SO_RCVBUFFORCE/SO_SNDBUFFORCE), as done here from outside:
root takes a copy of each of the process's UDP sockets (pidfd_getfd, Linux >= 5.6) and
sets the sizes on it; they are the same sockets, so nothing else on the host changes
(no sysctl). A rebind (a new listen port) makes new sockets: ensure() is called at each
converge and sets only sockets it has not set yet.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import select
import socket
from pathlib import Path

log = logging.getLogger("atwill.overlay")

PROGRAM = "wireguard-go"  # the only program whose sockets enlarge() touches
SIZE = 7 << 20  # wireguard-go's own choice since its 2023 releases
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33
_PIDFD_OPEN, _PIDFD_GETFD = 434, 438  # x86-64 and arm64 alike (the generic numbers)
_libc = ctypes.CDLL(None, use_errno=True)
# pid -> the socket inodes already set, so a converge that changed nothing does nothing.
_done: dict[int, frozenset[int]] = {}


def udp_inodes(pid: int) -> set[int]:
    """The inodes of the UDP sockets in pid's network namespace (/proc/PID/net/udp{,6})."""
    found: set[int] = set()
    for name in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9].isdigit():
                found.add(int(fields[9]))
    return found


def socket_fds(pid: int, inodes: set[int]) -> list[int]:
    """pid's descriptor numbers that are one of those sockets."""
    fds = []
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            fds.append(int(name))
    return sorted(fds)


def ensure(pid: int, size: int = SIZE, ifname: str | None = None) -> None:
    """enlarge(pid) unless its UDP sockets are the ones tried last time."""
    inodes = udp_inodes(pid)
    current = frozenset(inodes & _fd_inodes(pid))
    if not current or _done.get(pid) == current:
        return
    enlarge(pid, size, ifname)
    # Also after a failure (logged once, not at every converge); a few entries in a
    # process's life, one per wireguard-go start or rebind.
    _done[pid] = current


def _fd_inodes(pid: int) -> set[int]:
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def _syscall(number: int, *args: int) -> int:
    result = int(_libc.syscall(number, *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def enlarge(pid: int, size: int = SIZE, ifname: str | None = None) -> int:
    """Set pid's UDP sockets' send and receive buffers to size; how many were set. Only
    when pid is root's PROGRAM (with ifname in its argv when given), checked through a
    pidfd taken first, so a PID reused since it was looked up is left alone. An error is
    logged, never raised: the overlay works without it, only slower."""
    try:
        pidfd = _syscall(_PIDFD_OPEN, pid, 0)
    except OSError as err:
        log.warning("cannot reach wireguard-go %d's sockets: %s", pid, err)
        return 0
    try:
        refused = _not_ours(pid, pidfd, ifname)
        if refused:
            log.warning("not enlarging process %d's UDP buffers: %s", pid, refused)
            return 0
        return _set_all(pid, pidfd, size)
    except Exception as err:  # noqa: BLE001 - documented never to raise
        log.warning("cannot enlarge wireguard-go %d's UDP buffers: %s", pid, err)
        return 0
    finally:
        os.close(pidfd)


def _not_ours(pid: int, pidfd: int, ifname: str | None) -> str | None:
    """Why the process pidfd refers to is not root's PROGRAM for ifname; None if it is.

    /proc/PID is read after the pidfd was taken and before the pidfd is found not to have
    exited: as long as it has not, PID is still the process the pidfd holds."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
        status = Path(f"/proc/{pid}/status").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError as err:
        return f"cannot read it: {err}"
    if os.path.basename(exe) != PROGRAM:
        return f"it runs {exe}, not {PROGRAM}"
    uids = next((line.split()[1:] for line in status.splitlines()
                 if line.startswith("Uid:")), [])
    if not uids or any(uid != "0" for uid in uids):
        return f"it runs as uid {' '.join(uids) or '?'}, not root"
    if ifname is not None and ifname not in argv:
        return f"its argv does not name {ifname}"
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    if poller.poll(0):
        return "it has exited"
    return None


def _set_all(pid: int, pidfd: int, size: int) -> int:
    done = 0
    inodes = udp_inodes(pid)
    for number in socket_fds(pid, inodes):
        try:
            fd = _syscall(_PIDFD_GETFD, pidfd, number, 0)
        except OSError as err:
            if err.errno != errno.EBADF:  # closed meanwhile
                log.warning("cannot take wireguard-go %d's socket %d: %s", pid, number, err)
            continue
        try:
            # The number may have been closed and reused since it was listed.
            if os.fstat(fd).st_ino not in inodes:
                continue
            sock = socket.socket(fileno=fd)  # ENOTSOCK leaves fd ours, closed below
            fd = -1  # the socket's now
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
                sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, size)
            done += 1
        except OSError as err:
            log.warning("cannot set wireguard-go %d's socket %d: %s", pid, number, err)
        finally:
            if fd >= 0:
                os.close(fd)
    return done


def buffer_sizes(pid: int) -> list[tuple[int, int]]:
    """(receive, send) buffer sizes of pid's UDP sockets, as the kernel reports them."""
    sizes = []
    pidfd = _syscall(_PIDFD_OPEN, pid, 0)
    try:
        for number in socket_fds(pid, udp_inodes(pid)):
            fd = _syscall(_PIDFD_GETFD, pidfd, number, 0)
            with socket.socket(fileno=fd) as sock:
                sizes.append((sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                              sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)))
    finally:
        os.close(pidfd)
    return sizes
