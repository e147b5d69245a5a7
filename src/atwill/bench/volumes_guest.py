"""`atwill bench volumes --guest`: dd inside a guest, a volume over the overlay against
the guest's own local disk, in a two-node lab made and removed here.

node1 computes, node2 keeps volumes only (`ATWILL_JOIN_STORAGE`, as test_ha makes one;
the server is placed on node1 by zone), so the volume's NBD export (TLS, the storage
node's qemu-storage-daemon) crosses the lab's WireGuard overlay. One server (the
busybox `atwill-guest` image, 256 MiB, a 1 GiB root disk) boots with user data that waits
for a blank 1 GiB volume, hot-plugged (`server add volume`), and then times busybox dd:
on the volume and on a scratch area of the root disk (the instance's qcow2 overlay on
node1, at 256 MiB, past the boot filesystem), both at the same offset and size,
alternating which goes first, case by case, `rounds` times after an untimed fill of both
areas (so no case writes into unallocated qcow2 clusters on either side):
- seq-write / seq-read: one dd of `mib` 1 MiB blocks, O_DIRECT (oflag/iflag=direct),
  the write ended by an fsync (conv=fsync: a flush on both disks);
- 4k-write-qd1 / 4k-read-qd1: one dd of `small` 4 KiB blocks at consecutive offsets,
  O_DIRECT, one request in flight: per-request latency, not seeks;
- 4k-randwrite / 4k-randread: `rand` dd processes of one 4 KiB O_DIRECT block each at
  pseudo-random offsets in the area (awk's rand, fixed seed, the same on both), the
  writes ended by an fsync; the same loop against /dev/zero in the same round (the dd
  processes' start-up, costly under TCG) is subtracted.
Writes are of zeros (/dev/zero): neither QEMU here detects zeros (detect-zeroes is off).
Time is the guest's clock ($EPOCHREALTIME, microseconds). The guest's caches are out of
it (O_DIRECT), and so are the hosts' for reads: before each read case the guest says
EVICT on its console and waits a second, in which this bench (reading node1's console
file) drops both files' pages from the page cache (posix_fadvise DONTNEED, nothing else
of the machine's cache): the local qcow2 on node1 (cache=writeback, QEMU's default, so it
would read from node1's memory) and the volume's file on node2 (its export's daemon reads
through node2's page cache; the NBD client on node1 has cache.direct). Both reads then
come from the disk, as a cold read on a real node would; writes go to each host's page
cache and are flushed (fsync) on both sides alike.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..guest.build import build_image
from ..lab import Lab
from . import volumes_guest_figures as fig
from .cluster import temporary_lab
from .signals import sigterm_unwinds

COMPUTE, STORAGE = "node1", "node2"
FLAVOR, NET, SUBNET, CIDR = "bench.vol", "vnet", "vsub", "10.77.0.0/24"
OFFSET_MIB = 256
TIMEOUT = 240

SCRIPT = r"""#!/bin/sh
# atwill bench volumes --guest: timed dd on the attached volume and on the root disk.
S={serial}; MIB={mib}; SMALL={small}; RAND={rand}; ROUNDS={rounds}; OFF={offset}
B=$((OFF * 256))
say() {{ echo "VBENCH $*" > /dev/console; }}
for i in $(seq 1 960); do
  for d in /sys/block/vd*; do
    [ "$(cat "$d/serial" 2>/dev/null)" = "$S" ] && vol=/dev/${{d##*/}} && break 2
  done
  sleep 0.25
done
[ -n "$vol" ] || {{ say "ERR no disk with serial $S"; exit 1; }}
loc=/dev/vda
[ "$vol" != "$loc" ] || {{ say "ERR the volume is vda"; exit 1; }}
q=/sys/block/${{vol#/dev/}}/queue
say "DISKS vol=$vol $(cat /sys/block/${{vol#/dev/}}/size) loc=$loc $(cat /sys/block/vda/size)" \
  "max_sectors_kb=$(cat $q/max_sectors_kb) max_segments=$(cat $q/max_segments)"
awk -v n=$RAND -v m=$((MIB * 256)) \
  'BEGIN {{ srand(4096); for (i = 0; i < n; i++) print int(rand() * m) }}' > /tmp/offs
sw() {{ dd if=/dev/zero of=$1 bs=1M count=$MIB seek=$OFF oflag=direct conv=notrunc,fsync; }}
sr() {{ dd if=$1 of=/dev/null bs=1M count=$MIB skip=$OFF iflag=direct; }}
qw() {{ dd if=/dev/zero of=$1 bs=4k count=$SMALL seek=$B oflag=direct conv=notrunc,fsync; }}
qr() {{ dd if=$1 of=/dev/null bs=4k count=$SMALL skip=$B iflag=direct; }}
rw() {{ while read o; do
    dd if=/dev/zero of=$1 bs=4k count=1 seek=$((B + o)) oflag=direct conv=notrunc || return 1
  done < /tmp/offs
  dd if=/dev/zero of=$1 bs=4k count=0 seek=$B conv=notrunc,fsync; }}
rr() {{ while read o; do
    dd if=$1 of=/dev/null bs=4k count=1 skip=$((B + o)) iflag=direct || return 1
  done < /tmp/offs; }}
sp() {{ while read o; do
    dd if=/dev/zero of=/dev/null bs=4k count=1 skip=$((B + o)) || return 1
  done < /tmp/offs; }}
T() {{ r=$1 t=$2 c=$3 dev=$4
  case $c in sr|qr|rr) say "EVICT $r $t $c"; sleep 1;; esac
  a=$EPOCHREALTIME
  if $c $dev 2>/tmp/err; then b=$EPOCHREALTIME; say "T $r $t $c $a $b"
  else say "ERR $r $t $c $(tail -n 1 /tmp/err)"; fi; }}
T 0 vol sw $vol; T 0 loc sw $loc
for r in $(seq 1 $ROUNDS); do
  for c in sw sr qw qr rw rr; do
    if [ $((r % 2)) = 1 ]; then T $r vol $c $vol; T $r loc $c $loc
    else T $r loc $c $loc; T $r vol $c $vol; fi
  done
  T $r none sp /dev/null
done
say END
"""


def script(serial: str, sizes: dict[str, int], rounds: int) -> str:
    """The guest's user data."""
    return SCRIPT.format(serial=serial, rounds=rounds, offset=OFFSET_MIB, **sizes)


class GuestBench:
    def __init__(self, lab: Lab, workdir: Path) -> None:
        self.lab, self.workdir = lab, workdir

    def setup(self) -> None:
        """The guest image, flavor and network; node2 joined as a storage node only."""
        self.lab.openstack("image", "create", "--file", str(build_image().path),
                           "--disk-format", "qcow2", "--container-format", "bare",
                           "atwill-guest", "-f", "json")
        self.lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                           FLAVOR)
        self.lab.openstack("network", "create", NET)
        self.lab.openstack("subnet", "create", "--network", NET, "--subnet-range", CIDR, SUBNET)
        self.lab.add_node(STORAGE, join=False)
        path = Path(self.lab.host(STORAGE).state_dir) / "volumes"
        self.lab.boot_agent(STORAGE, {**self.lab.join_settings(STORAGE),
                                      "ATWILL_JOIN_STORAGE": str(path)})
        self.lab.wait_node_state(STORAGE, "up", 60)
        # Its nova-compute off: it only keeps the volume (its cinder-volume stays on).
        self.lab.openstack("compute", "service", "set", "--disable", STORAGE, "nova-compute")

    def volume(self) -> dict[str, Any]:
        made = self.lab.openstack("volume", "create", "--size", "1", "vbench", "-f", "json")
        shown: dict[str, Any] = self.lab.wait_for(
            lambda: (v := self.lab.openstack("volume", "show", made["id"], "-f", "json"))
            ["status"] in ("available", "error") and v, 60, "the volume created")
        if shown["status"] != "available":
            raise RuntimeError(f"volume: {shown['status']}")
        return shown

    def run(self, sizes: dict[str, int], rounds: int) -> tuple[str, dict[str, Any]]:
        """Boots the guest, attaches the volume, waits for the end; the console, facts."""
        vol = self.volume()
        user_data = self.workdir / "user-data.sh"
        user_data.write_text(script(vol["id"][:20], sizes, rounds))
        server = self.lab.openstack(
            "server", "create", "--flavor", FLAVOR, "--image", "atwill-guest", "--network",
            NET, "--availability-zone", f"nova:{COMPUTE}", "--user-data", str(user_data),
            "--wait", "vbench", "-f", "json", timeout=TIMEOUT)
        self.lab.openstack("server", "add", "volume", server["id"], vol["id"], timeout=TIMEOUT)
        shown = self.lab.openstack("volume", "show", vol["id"], "-f", "json")
        hosts = [a.get("host_name") for a in shown["attachments"]]
        spec = Path(self.lab.host(COMPUTE).state_dir) / "instances" / server["id"] / "spec.json"
        facts = {"compute": COMPUTE, "storage": STORAGE, "rounds": rounds, **sizes,
                 "attached_on": hosts, "volume_host": shown.get("os-vol-host-attr:host"),
                 "accel": json.loads(spec.read_text()).get("accel", "unknown")}
        evictor = Evictor(Path(spec.parent / "console.log"),
                          [spec.parent / "disk.qcow2", *self.volume_files(vol["id"])])
        # rcS says "user data exited N" when the script ends, done or not.
        with evictor:
            console = self.lab.wait_for(
                lambda: "user data exited" in (c := self.console(server["id"])) and c,
                budget(sizes, rounds), "the guest's script to end", interval=3)
        facts["evictions"] = evictor.count
        if "VBENCH END" not in console:
            raise RuntimeError(f"the guest's script stopped early:\n{console[-2000:]}")
        return console, facts

    def volume_files(self, volume_id: str) -> list[Path]:
        """The volume's file on the storage node (RuntimeError if there is none)."""
        found = sorted((Path(self.lab.host(STORAGE).state_dir) / "volumes").rglob(
            f"*{volume_id}*"))
        if not found:
            raise RuntimeError(f"no file of volume {volume_id} on {STORAGE}")
        return found

    def console(self, server: str) -> str:
        return str(self.lab.openstack("console", "log", "show", server, timeout=60) or "")


class Evictor:
    """While in its block: each new `VBENCH EVICT` line in the console file drops the
    files' pages from the host's page cache (the guest waits a second after the line)."""

    def __init__(self, console: Path, files: list[Path], interval: float = 0.05) -> None:
        self.console, self.files, self.interval = console, files, interval
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Evictor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen = 0
        while not self._stop.wait(self.interval):
            try:
                lines = self.console.read_bytes().count(b"VBENCH EVICT")
            except OSError:
                continue
            if lines > seen:
                seen = lines
                self.evict()

    def evict(self) -> None:
        for path in self.files:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        self.count += 1


def budget(sizes: dict[str, int], rounds: int) -> float:
    """Seconds to wait for the guest: boot and hot-plug, then a generous 60 s per round
    and 64 MiB, and 20 ms per small request (TCG's dd start-up is most of it)."""
    per_round = 60 * max(1, sizes["mib"] // 64) + 0.02 * (sizes["small"] + 3 * sizes["rand"])
    return 180 + (rounds + 1) * (per_round + 6)  # 6 reads a round, each a second later


def main(mib: int = 64, small: int = 1024, rand: int = 200, rounds: int = 3) -> dict[str, Any]:
    """Run it; print the table; the figures."""
    if small > mib * 256:
        raise ValueError(f"{small} requests of 4 KiB do not fit in {mib} MiB")
    sizes = {"mib": mib, "small": small, "rand": rand}
    with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="atwill-bench-") as tmp:
        with temporary_lab(nodes=1, bare=True) as lab:
            bench = GuestBench(lab, Path(tmp))
            bench.setup()
            console, facts = bench.run(sizes, rounds)
    runs, errors = fig.parse(console)
    figs = fig.figures(runs, sizes)
    results = {**facts, "figures": figs, "errors": errors, "verdict": fig.verdict(figs),
               "disks": [line for line in console.splitlines() if "VBENCH DISKS" in line]}
    print(fig.report(figs, facts))
    for line in errors:
        print(f"  error in the guest: {line}")
    return results
