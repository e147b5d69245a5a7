"""TUN/TAP devices of this process's network namespace, by ioctl: no `ip` run.

Each `ip` run is milliseconds of fork and exec (tens on busy cores) on the way to every
VM's start; these are the kernel calls `ip tuntap add` and `ip link set` make
(TUNSETIFF and TUNSETPERSIST on /dev/net/tun; SIOCSIFMTU and SIOCSIFFLAGS on a socket;
net.ipv6.conf.NAME.disable_ipv6 written in /proc/sys),
and the listing asks each interface's driver (ETHTOOL_GDRVINFO: "tun" for TUN and TAP
devices, what `ip link show type tun` lists). The namespace is the calling thread's,
as for `ip` run by it. Failures raise HostCommandError, as the `ip` runs did.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct

from atwill.hostlib.run import HostCommandError

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
# Refuse to attach to a tap that exists already (EBUSY), as `ip tuntap add` asks: without
# it TUNSETIFF on a persistent tap of that name opens that very tap, whoever made it.
IFF_TUN_EXCL = 0x8000
IFF_UP = 0x1
SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8913, 0x8914
SIOCGIFMTU, SIOCSIFMTU = 0x8921, 0x8922
SIOCETHTOOL, ETHTOOL_GDRVINFO = 0x8946, 0x3
IFREQ = 40  # struct ifreq on Linux: a 16-byte name and a 24-byte union
DRVINFO = 196  # struct ethtool_drvinfo
TUN = "/dev/net/tun"
IPV6_CONF = "/proc/sys/net/ipv6/conf"  # this namespace's: /proc/sys/net is the opener's


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return (name.encode().ljust(16, b"\0")[:16] + payload).ljust(IFREQ, b"\0")


def _fail(what: str, name: str, err: OSError) -> HostCommandError:
    return HostCommandError(["ioctl", what, name], err.errno or 1, err.strerror or str(err))


def driver(sock: socket.socket, name: str) -> str | None:
    """The interface's driver name ("tun" for TUN/TAP), or None if it has none to say."""
    info = ctypes.create_string_buffer(struct.pack("I", ETHTOOL_GDRVINFO), DRVINFO)
    try:
        fcntl.ioctl(sock, SIOCETHTOOL, _ifreq(name, struct.pack("P", ctypes.addressof(info))))
    except OSError:
        return None
    return info.raw[4:36].split(b"\0", 1)[0].decode(errors="replace")


def _flags(sock: socket.socket, name: str) -> int:
    return int(struct.unpack_from("H", fcntl.ioctl(sock, SIOCGIFFLAGS, _ifreq(name)), 16)[0])


def _mtu(sock: socket.socket, name: str) -> int:
    return int(struct.unpack_from("i", fcntl.ioctl(sock, SIOCGIFMTU, _ifreq(name)), 16)[0])


def links() -> dict[str, tuple[int, bool]]:
    """Every TUN/TAP device here: name -> (MTU, administratively up)."""
    out = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            if driver(sock, name) != "tun":
                continue
            try:
                out[name] = (_mtu(sock, name), bool(_flags(sock, name) & IFF_UP))
            except OSError:
                continue  # gone meanwhile
    return out


def exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def add(name: str) -> bool:
    """Make a persistent tap `name` (as `ip tuntap add dev NAME mode tap`); False when
    that fails only because an interface of that name exists (it is kept as it is)."""
    try:
        fd = os.open(TUN, os.O_RDWR | os.O_CLOEXEC)
    except OSError as err:
        raise _fail("open " + TUN, name, err) from None
    try:
        flags = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL
        fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, struct.pack("H", flags)))
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    except OSError as err:
        if err.errno in (errno.EBUSY, errno.EINVAL, errno.EPERM) and exists(name):
            return False
        raise _fail("TUNSETIFF", name, err) from None
    finally:
        os.close(fd)
    return True


def disable_ipv6(name: str) -> None:
    """No IPv6 on the interface in this namespace's own stack (no link-local address, no
    packet taken in): a guest's tap is a bridge port, never an interface of the host's.
    A kernel without IPv6 has nothing to disable."""
    if "/" in name or name in (".", "..", "all", "default"):
        raise ValueError(f"not an interface name: {name!r}")
    try:
        with open(f"{IPV6_CONF}/{name}/disable_ipv6", "w") as knob:
            knob.write("1")
    except FileNotFoundError as err:
        if os.path.isdir(IPV6_CONF):
            raise _fail("disable_ipv6", name, err) from None
    except OSError as err:
        raise _fail("disable_ipv6", name, err) from None


def set_mtu(name: str, mtu: int | None) -> None:
    """Set the interface's MTU (if given and different), leaving it up or down as it is."""
    if mtu is None:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            if _mtu(sock, name) != mtu:
                fcntl.ioctl(sock, SIOCSIFMTU, _ifreq(name, struct.pack("i", mtu)))
        except OSError as err:
            raise _fail("SIOCSIFMTU", name, err) from None


def set_up(name: str, mtu: int | None = None) -> None:
    """Set the interface's MTU (if given) and bring it up (as `ip link set ... up`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            if mtu is not None and _mtu(sock, name) != mtu:
                fcntl.ioctl(sock, SIOCSIFMTU, _ifreq(name, struct.pack("i", mtu)))
            flags = _flags(sock, name)
            if not flags & IFF_UP:
                fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | IFF_UP)))
        except OSError as err:
            raise _fail("SIOCSIF", name, err) from None


def set_down(name: str) -> None:
    """Switch the interface off (as `ip link set ... down`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            flags = _flags(sock, name)
            if flags & IFF_UP:
                fcntl.ioctl(sock, SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags & ~IFF_UP)))
        except OSError as err:
            raise _fail("SIOCSIFFLAGS", name, err) from None


def plugged(name: str) -> bool:
    """Whether the interface is some bridge's (or bond's) port: it has a master."""
    return os.path.lexists(f"/sys/class/net/{name}/master")
