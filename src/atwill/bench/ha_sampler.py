"""Which lab hosts run a QEMU of each instance, sampled every 100 ms (bench ha's rounds).

The lab's hosts are network namespaces over one process table: each qemu-system
process names its instance (-uuid) in its command line, and its network
namespace names the host. A moment where one instance runs on two hosts is the
failure HA must never cause ("never twice"); a QEMU and its short-lived child on
one host are one copy.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

UUID = re.compile(rb"-uuid\x00([0-9a-f-]{36})\x00")
PERIOD = 0.1


def copies(netns: dict[int, str]) -> dict[str, set[str]]:
    """instance uuid -> the hosts (netns inode -> host) running a QEMU of it now."""
    found: dict[str, set[str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if not Path(f"/proc/{pid}/comm").read_text().startswith("qemu-system"):
                continue
            match = UUID.search(Path(f"/proc/{pid}/cmdline").read_bytes())
            host = netns.get(os.stat(f"/proc/{pid}/ns/net").st_ino, "?")
        except OSError:
            continue  # it exited meanwhile
        if match:
            found.setdefault(match.group(1).decode(), set()).add(host)
    return found


def twice(sample: dict[str, set[str]]) -> list[str]:
    """The instances running on more than one host in one sample."""
    return sorted(uuid for uuid, hosts in sample.items() if len(hosts) > 1)


class CopySampler:
    """Samples copies() in a thread until stopped; keeps the count and the bad moments."""

    def __init__(self, namespaces: Iterable[tuple[str, str]]) -> None:
        self.netns = {os.stat(f"/run/netns/{ns}").st_ino: host for host, ns in namespaces}
        self.samples = 0
        self.doubles: list[tuple[float, dict[str, list[str]]]] = []
        self.last: dict[str, set[str]] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qemu-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(PERIOD):
            sample = copies(self.netns)
            self.samples, self.last = self.samples + 1, sample
            bad = twice(sample)
            if bad:
                self.doubles.append((time.time(), {u: sorted(sample[u]) for u in bad}))

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(10)
