"""The controller's listening sockets: its configured address, and its overlay address.

Nodes fetch images (and may call the cluster API) through the overlay, so the API also
listens on the controller's overlay address. That address appears only once the
controller's overlay interface is up, after the sockets are made: the overlay socket is
bound with IP_FREEBIND so it can be bound before the address exists on the host.
Neither socket is inherited: a child (wireguard-go) holding one would keep the port
busy after the controller exits, and a restarted controller could not bind it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from ..config import Settings

log = logging.getLogger("atwill.controller")
WILDCARDS = ("0.0.0.0", "::", "")
# Linux: bind to an address not (yet) configured on this host.
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)
BACKLOG = 2048


def addresses(settings: Settings) -> list[str]:
    """Where the API listens: the configured host, and the overlay address unless covered."""
    wanted = [settings.listen_host]
    if settings.overlay != "none" and settings.listen_host not in WILDCARDS:
        overlay = settings.overlay_ip
        if overlay != settings.listen_host:
            wanted.append(overlay)
    return wanted


def _bind(host: str, port: int, freebind: bool, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host or "0.0.0.0").version == 6 \
        else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # one set of sockets per worker process (controller/prefork.py)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if freebind:
            sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


def sockets(settings: Settings, reuse_port: bool = False) -> list[socket.socket]:
    """Bound, listening sockets; the configured one must bind, the overlay one may not."""
    hosts = addresses(settings)
    made = [_bind(hosts[0], settings.port, freebind=False, reuse_port=reuse_port)]
    for host in hosts[1:]:
        try:
            made.append(_bind(host, settings.port, freebind=True, reuse_port=reuse_port))
        except OSError as err:
            log.warning("not listening on the overlay address %s:%d: %s", host,
                        settings.port, err)
    return made
