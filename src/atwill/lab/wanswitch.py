"""The WAN emulator's pure logic: a learning switch whose ports delay and drop frames.

Each port is one host's access link. A frame from port A to port B waits
delay(A) + delay(B) and survives loss(A) and loss(B) independently, exactly what
netem on both ends of each access link would do. Frames between the same two
ports never overtake each other, even when a delay shrinks while they wait.
No sockets and no clock here: the caller passes `now` and the frames.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import re
from collections.abc import Mapping

QUEUE_LIMIT = 10000  # frames waiting per output port; more are dropped and counted
_TIME = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|usec|ms|msec|s|sec|secs)\s*$")
_UNIT = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0,
         "secs": 1.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*$")


def parse_delay(text: str | None) -> float:
    """Seconds from a tc-style time ("40ms", "0.1s", "500us"); None or "" is 0."""
    if not text:
        return 0.0
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"delay {text!r}: expected a number and a unit (us, ms or s), "
                         f"e.g. '40ms'")
    return float(match[1]) * _UNIT[match[2]]


def parse_loss(text: str | None) -> float:
    """A probability from a tc-style percentage ("1%", "0.5%", "20"); None or "" is 0."""
    if not text:
        return 0.0
    match = _PERCENT.match(text)
    if not match or float(match[1]) > 100:
        raise ValueError(f"loss {text!r}: expected a percentage from 0 to 100, e.g. '1%'")
    return float(match[1]) / 100


@dataclasses.dataclass(frozen=True)
class Link:
    """One access link's emulation, applied in each direction."""

    delay: float = 0.0  # seconds
    loss: float = 0.0  # probability that a frame is dropped

    @classmethod
    def parse(cls, delay: str | None, loss: str | None) -> Link:
        return cls(parse_delay(delay), parse_loss(loss))


@dataclasses.dataclass
class Counters:
    """What one port saw: frames in from its host, out to it, and the drops."""

    rx: int = 0
    tx: int = 0
    lost: int = 0  # dropped by the emulated loss
    overflow: int = 0  # dropped because the port's queue was full
    errors: int = 0  # the send failed (link down, buffer full)


def is_multicast(mac: bytes) -> bool:
    """Broadcast and multicast MACs have the group bit set."""
    return bool(mac[0] & 1)


class Switch:
    """A learning switch's table: source MAC -> port; unknown or group MACs flood."""

    def __init__(self) -> None:
        self.table: dict[bytes, str] = {}

    def learn(self, mac: bytes, port: str) -> None:
        if not is_multicast(mac):
            self.table[mac] = port

    def forget(self, port: str) -> None:
        self.table = {mac: p for mac, p in self.table.items() if p != port}

    def outputs(self, dst: bytes, in_port: str, ports: list[str]) -> list[str]:
        """The ports a frame to `dst` leaves by (never the one it came in on)."""
        known = None if is_multicast(dst) else self.table.get(dst)
        if known is not None:
            return [] if known == in_port else [known]
        return [p for p in ports if p != in_port]


class Wan:
    """The switch plus a heap of frames by due time, bounded per output port."""

    def __init__(self, links: Mapping[str, Link], limit: int = QUEUE_LIMIT,
                 rng: random.Random | None = None) -> None:
        self.links: dict[str, Link] = {}
        self.counters: dict[str, Counters] = {}
        self.switch = Switch()
        self.limit = limit
        self.rng = rng or random.Random()
        self._heap: list[tuple[float, int, str, bytes]] = []
        self._seq = itertools.count()
        self._queued: dict[str, int] = {}
        self._last: dict[tuple[str, str], float] = {}
        self.configure(links)

    def configure(self, links: Mapping[str, Link]) -> None:
        """New settings; frames already waiting keep their due time."""
        for port in set(self.links) - set(links):
            self.switch.forget(port)
            self._heap = [e for e in self._heap if e[2] != port]
            heapq.heapify(self._heap)
            self._last = {k: v for k, v in self._last.items() if port not in k}
            self._queued.pop(port, None)
            self.counters.pop(port, None)
        self.links = dict(links)
        for port in self.links:
            self.counters.setdefault(port, Counters())
            self._queued.setdefault(port, 0)

    def receive(self, now: float, port: str, frame: bytes, offset: int = 0) -> None:
        """A frame from the host on `port`; its Ethernet header starts at `offset`."""
        src_link = self.links.get(port)
        if src_link is None:
            return
        self.counters[port].rx += 1
        dst, src = frame[offset:offset + 6], frame[offset + 6:offset + 12]
        self.switch.learn(src, port)
        if self._lost(src_link):
            self.counters[port].lost += 1
            return
        for out in self.switch.outputs(dst, port, list(self.links)):
            self._enqueue(now, port, out, frame)

    def _lost(self, link: Link) -> bool:
        return link.loss > 0 and self.rng.random() < link.loss

    def _enqueue(self, now: float, port: str, out: str, frame: bytes) -> None:
        out_link, counters = self.links[out], self.counters[out]
        if self._lost(out_link):
            counters.lost += 1
            return
        if self._queued[out] >= self.limit:
            counters.overflow += 1
            return
        # Never before the previous frame between the same ports: no reordering.
        due = max(now + self.links[port].delay + out_link.delay,
                  self._last.get((port, out), 0.0))
        self._last[(port, out)] = due
        self._queued[out] += 1
        heapq.heappush(self._heap, (due, next(self._seq), out, frame))

    def next_due(self) -> float | None:
        """When the earliest waiting frame is due (None: nothing waits)."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[tuple[str, bytes]]:
        """Every frame due by `now`, in due order, as (output port, frame)."""
        out: list[tuple[str, bytes]] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, port, frame = heapq.heappop(self._heap)
            self._queued[port] -= 1
            out.append((port, frame))
        return out

    def sent(self, port: str, ok: bool) -> None:
        """Count a frame handed to the host on `port` (ok) or that could not be (error)."""
        counters = self.counters.get(port)
        if counters is not None:
            if ok:
                counters.tx += 1
            else:
                counters.errors += 1

    def queued(self) -> int:
        return len(self._heap)
