"""atwill bench volumes: a volume through its NBD export against the same file opened locally.

A guest on a lab overlay costs minutes per run on this machine's two cores, so the figure
is the NBD export path itself, as a storage node serves it: the agent's own export code
(agent/storage/exports.py: qemu-storage-daemon without capabilities, TLS with an
attachment's pre-shared key, migration 0026) on the loopback, read and written by
`qemu-img bench` as a client QEMU would, against `qemu-img bench` on an identical qcow2
file opened directly. Same run, same disk, same page cache: the ratio is what the export
(NBD protocol, TLS, one more process) costs. The overlay link (WireGuard) and the guest's
virtio path are not in it; say so next to the figures.

"4 KiB" runs issue 4 KiB requests at consecutive offsets with 16 in flight (qemu-img
bench has no random pattern): IOPS of small requests, not of seeks.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..agent.storage.exports import Exports
from ..hostlib.run import run

VOLUME_ID = "0b7c2a5e-bench-4222-8333-944455556666"
IDENTITY = "atwill-att-bench"
MIB = 1 << 20
# (name, request bytes, requests in flight, write?)
CASES = (("seq-read", MIB, 8, False), ("seq-write", MIB, 8, True),
         ("4k-read", 4096, 16, False), ("4k-write", 4096, 16, True))
SMALL_REQUESTS = 20000
_COMPLETED = re.compile(r"Run completed in ([0-9.]+) seconds")


def seconds_of(output: str) -> float:
    """The time `qemu-img bench` reports; ValueError when it reports none."""
    found = _COMPLETED.search(output)
    if found is None:
        raise ValueError(f"qemu-img bench reported no time: {output[-300:]!r}")
    return float(found.group(1))


def figure(case: tuple[str, int, int, bool], count: int, took: float) -> float:
    """MB/s for the 1 MiB cases, IOPS for the 4 KiB ones."""
    _, size, _, _ = case
    return round(count * size / MIB / took, 1) if size >= MIB else round(count / took)


def bench_argv(target: list[str], case: tuple[str, int, int, bool], count: int) -> list[str]:
    _, size, depth, write = case
    return ["qemu-img", "bench", *target, "-c", str(count), "-s", str(size), "-d", str(depth),
            *(["-w", "--pattern=90"] if write else [])]


def _targets(tmp: Path, port: int, key: str) -> dict[str, list[str]]:
    keys = tmp / "client"
    keys.mkdir(mode=0o700)
    (keys / "keys.psk").write_text(f"{IDENTITY}:{key}\n")
    (keys / "keys.psk").chmod(0o600)
    nbd = (f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},"
           f"export={VOLUME_ID},tls-creds=tls0")
    return {"local": ["-f", "qcow2", str(tmp / "local.qcow2")],
            "export": ["--object", f"tls-creds-psk,id=tls0,endpoint=client,dir={keys},"
                                   f"username={IDENTITY}", "--image-opts", nbd]}


def _measure(targets: dict[str, list[str]], size_mb: int, rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for case in CASES:
        count = size_mb if case[1] >= MIB else SMALL_REQUESTS
        best = {}
        for name, target in targets.items():
            took = min(seconds_of(run(bench_argv(target, case, count), timeout=600).stdout)
                       for _ in range(rounds))
            best[name] = figure(case, count, took)
        unit = "MB/s" if case[1] >= MIB else "IOPS"
        out[case[0]] = {"unit": unit, **best,
                        "ratio": round(best["export"] / best["local"], 2)}
        print(f"{case[0]:>10}: export {best['export']} {unit}, local {best['local']} {unit}, "
              f"ratio {out[case[0]]['ratio']}")
    return out


def main(size_mb: int = 256, rounds: int = 3) -> dict[str, Any]:
    """Figures by case: export and local (MB/s or IOPS) and their ratio."""
    tmp = Path(tempfile.mkdtemp(prefix="atwill-bench-volumes-"))
    key = secrets.token_hex(32)
    exports = Exports(tmp / "exports", tmp / "none", tmp / "none", tmp / "none")
    try:
        for name in ("local.qcow2", "exported.qcow2"):
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp / name), f"{size_mb}M"])
            # Written once, so reads read data and writes overwrite allocated clusters.
            run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {size_mb}M",
                 str(tmp / name)], timeout=600)
        export = exports.ensure(VOLUME_ID, "bench", "bench", "127.0.0.1",
                                tmp / "exported.qcow2", (f"{IDENTITY}:{key}",))
        try:
            results = {"size_mb": size_mb, "rounds": rounds, "transport": "loopback",
                       "tls": "psk", **_measure(_targets(tmp, export.port, key), size_mb,
                                                rounds)}
        finally:
            exports.revoke(VOLUME_ID, "bench")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
