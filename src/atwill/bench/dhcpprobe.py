"""A DHCP client that measures: DISCOVER every 50 ms on a raw socket until OFFER, then ACK.

busybox udhcpc retries once a second at best, which would round every figure up
to the next second; this sends its own frames at INTERVAL and notes, on the
system's monotonic clock (the same in every namespace), when the node's dnsmasq
first offered and acknowledged. Run inside a port host:

    python -m atwill.bench.dhcpprobe IFACE MAC TIMEOUT

It prints "started <t>" once its socket is open, then one JSON line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import select
import socket
import struct
import sys
import time
from typing import Any

INTERVAL = 0.05
ETH_P_IP = 0x0800
COOKIE = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK = 1, 2, 3, 5


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(mac: bytes, xid: int, kind: int, extra: bytes = b"") -> bytes:
    """A broadcast Ethernet frame carrying one BOOTP request of DHCP message type `kind`."""
    options = bytes([53, 1, kind]) + extra + bytes([55, 3, 1, 3, 26, 255])
    bootp = (struct.pack("!BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + bytes(16)
             + mac + bytes(10) + bytes(192) + COOKIE + options)
    udp = struct.pack("!HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                     bytes(4), b"\xff\xff\xff\xff")
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_IP) + ip + udp


def parse(data: bytes, xid: int) -> dict[str, Any] | None:
    """The reply's message type, offered address and options, if it is ours; else None."""
    if len(data) < 14 + 20 + 8 + 240 or data[12:14] != b"\x08\x00" or data[23] != 17:
        return None
    ihl = (data[14] & 0x0F) * 4
    udp = 14 + ihl
    if struct.unpack("!H", data[udp + 2:udp + 4])[0] != 68:
        return None
    bootp = data[udp + 8:]
    if bootp[0] != 2 or struct.unpack("!I", bootp[4:8])[0] != xid or bootp[236:240] != COOKIE:
        return None
    options: dict[int, bytes] = {}
    rest = bootp[240:]
    while rest and rest[0] != 255:
        if rest[0] == 0:
            rest = rest[1:]
            continue
        options[rest[0]] = rest[2:2 + rest[1]]
        rest = rest[2 + rest[1]:]
    kind = options.get(53, b"\x00")[0]
    return {"type": kind, "ip": socket.inet_ntoa(bootp[16:20]), "server": options.get(54),
            "mask": options.get(1), "mtu": options.get(26)}


def _lease(reply: dict[str, Any]) -> dict[str, Any]:
    mask = socket.inet_ntoa(reply["mask"]) if reply["mask"] else "255.255.255.255"
    prefix = ipaddress.ip_network(f"0.0.0.0/{mask}").prefixlen
    mtu = struct.unpack("!H", reply["mtu"])[0] if reply["mtu"] else None
    return {"ip": reply["ip"], "prefix": prefix, "mtu": mtu}


def probe(iface: str, mac_text: str, timeout: float) -> dict[str, Any]:
    """DISCOVER until OFFER, then REQUEST until ACK, each resent every INTERVAL."""
    mac = bytes.fromhex(mac_text.replace(":", ""))
    xid = int.from_bytes(os.urandom(4), "big")
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    sock.bind((iface, 0))
    start = time.monotonic()
    print(f"started {start}", flush=True)
    result: dict[str, Any] = {"start": start, "offer": None, "ack": None, "sent": 0}
    message = frame(mac, xid, DISCOVER)
    deadline = start + timeout
    while result["ack"] is None and time.monotonic() < deadline:
        sock.send(message)
        result["sent"] += 1
        tick = time.monotonic() + INTERVAL
        while (left := tick - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                break
            reply = parse(sock.recv(2048), xid)
            if reply is None:
                continue
            if reply["type"] == OFFER and result["offer"] is None:
                result["offer"] = time.monotonic()
                extra = (bytes([50, 4]) + socket.inet_aton(reply["ip"])
                         + (bytes([54, 4]) + reply["server"] if reply["server"] else b""))
                message = frame(mac, xid, REQUEST, extra)
                break
            if reply["type"] == ACK and result["offer"] is not None:
                result["ack"] = time.monotonic()
                result.update(_lease(reply))
                break
    sock.close()
    return result


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1], sys.argv[2], float(sys.argv[3]))), flush=True)
