"""atwill bench volumes: a volume through its NBD export against the same file opened locally.

A guest on a lab overlay costs minutes per run on this machine's two cores, so the figure
is the NBD export path itself, as a storage node serves it: the agent's own export code
(agent/storage/exports.py: qemu-storage-daemon without capabilities, TLS with an
attachment's pre-shared key, migration 0026) on the loopback, read and written by
`qemu-io` as a client QEMU would (QEMU 7.2's `qemu-img bench` takes no TLS object),
against `qemu-io` on an identical qcow2 file opened directly. Each run is a script of
asynchronous requests ended by a flush, timed on the wall clock less the same tool's
start-up with an empty script (the TLS handshake stays out of both). Same run, same
disk, same page cache: the ratio is what the export (NBD, TLS, one more process) costs.
A third target, "plain", is the same daemon and options without TLS (on a third copy),
so that plain_ratio less ratio is what TLS costs.
The overlay link (WireGuard) and the guest's virtio path are not in it: volumes_guest.py
(`--guest`) measures from inside a guest over a lab's overlay.

"4 KiB" runs queue 4 KiB requests at consecutive offsets, all at once (the script has no
random pattern): IOPS of small requests, not of seeks.

Both sides run with the same cache semantics, twice. "writeback" is a guest's: its disk
has a volatile write cache (QEMU's default for a -blockdev device) and only the flush
ending the script must reach the disk; over NBD the writes land in the storage node's page
cache and the flush is an NBD FLUSH, an fdatasync there. "writethrough" (qemu-io's own
default, the figures before issue 12's fix) makes every write durable before it completes:
locally QEMU follows each write with a flush and merges the flushes of all the requests
in flight, while the NBD client sends each write with FUA, one fdatasync per request on
the storage node, at most 16 in flight (QEMU's NBD client limit; the local side has no
limit). Only the write cases differ, so only they run twice.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..agent.storage.exports import Export, Exports, daemon_argv, listener
from ..hostlib.run import run

VOLUME_ID = "0b7c2a5e-bench-4222-8333-944455556666"
IDENTITY = "atwill-att-bench"
MIB = 1 << 20
# (name, request bytes, write?)
CASES = (("seq-read", MIB, False), ("seq-write", MIB, True),
         ("4k-read", 4096, False), ("4k-write", 4096, True))
SMALL_REQUESTS = 20000
# One fdatasync per request over NBD in writethrough: fewer, or a run takes minutes.
SMALL_WRITETHROUGH = 2000
MODES = ("writeback", "writethrough")


def script(case: tuple[str, int, bool], count: int) -> str:
    """qemu-io commands: count asynchronous requests at consecutive offsets, then a flush
    (which waits for them all)."""
    _, size, write = case
    verb = "aio_write -q -P 90" if write else "aio_read -q"
    return "".join(f"{verb} {i * size} {size}\n" for i in range(count)) + "aio_flush\nquit\n"


def timed(argv: list[str], commands: str) -> float:
    """Seconds qemu-io took to run commands; RuntimeError when it failed."""
    started = time.monotonic()
    done = subprocess.run(argv, input=commands, capture_output=True, text=True, timeout=600,
                          check=False)
    took = time.monotonic() - started
    if done.returncode != 0 or "error" in done.stdout.lower():
        raise RuntimeError(f"{' '.join(argv)}: {(done.stderr or done.stdout)[-300:]}")
    return took


def figure(case: tuple[str, int, bool], count: int, took: float) -> float:
    """MB/s for the 1 MiB cases, IOPS for the 4 KiB ones."""
    _, size, _ = case
    return round(count * size / MIB / took, 1) if size >= MIB else round(count / took)


def cached(targets: dict[str, list[str]], mode: str) -> dict[str, list[str]]:
    """targets' qemu-io command lines with the cache mode mode (-t) on both sides."""
    return {name: [argv[0], "-t", mode, *argv[1:]] for name, argv in targets.items()}


def cases(mode: str, size_mb: int) -> list[tuple[tuple[str, int, bool], int]]:
    """(case, request count) pairs a cache mode runs: writethrough only writes."""
    return [(case, size_mb if case[1] >= MIB else
             SMALL_WRITETHROUGH if mode == "writethrough" else SMALL_REQUESTS)
            for case in CASES if mode == "writeback" or case[2]]


def plain_argv(image: Path, directory: Path, fd: int) -> list[str]:
    """The export's daemon command line (exports.daemon_argv) without TLS, listening on
    our descriptor fd: for the figure that tells TLS's cost."""
    argv = daemon_argv(Export(VOLUME_ID, "plain", "plain", "127.0.0.1", 0, ("-",)), image,
                       directory)
    at = argv.index("--object")
    del argv[at:at + 2]
    argv[argv.index("--nbd-server") + 1] = f"addr.type=fd,addr.str={fd}"
    return argv


@contextlib.contextmanager
def _plain_export(tmp: Path) -> Iterator[int]:
    """The port of a daemon serving tmp/plain.qcow2 without TLS while in the block."""
    (tmp / "plain").mkdir(mode=0o700)
    with listener("127.0.0.1", 0) as sock:
        daemon = subprocess.Popen(plain_argv(tmp / "plain.qcow2", tmp / "plain", sock.fileno()),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, pass_fds=[sock.fileno()])
        port = sock.getsockname()[1]
    try:
        yield port
    finally:
        daemon.terminate()
        daemon.wait(30)


def _targets(tmp: Path, port: int, key: str, plain: int) -> dict[str, list[str]]:
    keys = tmp / "client"
    keys.mkdir(mode=0o700)
    (keys / "keys.psk").write_text(f"{IDENTITY}:{key}\n")
    (keys / "keys.psk").chmod(0o600)
    nbd = (f"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},"
           f"export={VOLUME_ID},tls-creds=tls0")
    return {"local": ["qemu-io", "-f", "qcow2", str(tmp / "local.qcow2")],
            "export": ["qemu-io", "--object", f"tls-creds-psk,id=tls0,endpoint=client,"
                       f"dir={keys},username={IDENTITY}", "--image-opts", nbd],
            "plain": ["qemu-io", "--image-opts", nbd.replace(f"port={port}", f"port={plain}")
                      .replace(",tls-creds=tls0", "")]}


def _measure(targets: dict[str, list[str]], size_mb: int, rounds: int,
             mode: str) -> dict[str, Any]:
    targets = cached(targets, mode)
    start_up = {name: min(timed(argv, "quit\n") for _ in range(rounds))
                for name, argv in targets.items()}
    out: dict[str, Any] = {"start_up_s": {k: round(v, 3) for k, v in start_up.items()}}
    for case, count in cases(mode, size_mb):
        commands, best = script(case, count), {}
        for name, argv in targets.items():
            took = min(timed(argv, commands) for _ in range(rounds)) - start_up[name]
            best[name] = figure(case, count, max(took, 1e-3))
        unit = "MB/s" if case[1] >= MIB else "IOPS"
        out[case[0]] = {"unit": unit, **best,
                        "ratio": round(best["export"] / best["local"], 2),
                        "plain_ratio": round(best["plain"] / best["local"], 2)}
        print(f"{mode:>12} {case[0]:>10}: export {best['export']} {unit}, "
              f"local {best['local']} {unit}, ratio {out[case[0]]['ratio']} "
              f"(without TLS {out[case[0]]['plain_ratio']})")
    return out


def main(size_mb: int = 256, rounds: int = 3) -> dict[str, Any]:
    """Figures by cache mode and case: export, plain (no TLS) and local (MB/s or IOPS),
    and the ratios of the first two to local."""
    tmp = Path(tempfile.mkdtemp(prefix="atwill-bench-volumes-"))
    key = secrets.token_hex(32)
    exports = Exports(tmp / "exports", tmp / "none", tmp / "none", tmp / "none")
    try:
        for name in ("local.qcow2", "exported.qcow2", "plain.qcow2"):
            run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp / name), f"{size_mb}M"])
            # Written once, so reads read data and writes overwrite allocated clusters.
            run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0x5a 0 {size_mb}M",
                 str(tmp / name)], timeout=600)
        export = exports.ensure(VOLUME_ID, "bench", "bench", "127.0.0.1",
                                tmp / "exported.qcow2", (f"{IDENTITY}:{key}",))
        try:
            with _plain_export(tmp) as plain:
                targets = _targets(tmp, export.port, key, plain)
                results = {"size_mb": size_mb, "rounds": rounds, "transport": "loopback",
                           "tls": "psk", **{mode: _measure(targets, size_mb, rounds, mode)
                                            for mode in MODES}}
        finally:
            exports.revoke(VOLUME_ID, "bench")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results
