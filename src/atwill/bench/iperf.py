"""iperf3 between two lab namespaces: a one-off server killed by PID, a bounded JSON client."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..lab import commands, processes
from ..lab.netns import Namespace

PORT = 5299
READY_TIMEOUT = 10.0


class IperfError(RuntimeError):
    """iperf3 did not run or did not report a figure; the message says why."""


def _listening(ns: Namespace, port: int) -> bool:
    out = commands.run_in(ns, ["ss", "-Hltn", f"sport = :{port}"], check=False).stdout
    return bool(out.strip())


def gbits(server: Namespace, client: Namespace, address: str, logdir: Path,
          seconds: int = 5, port: int = PORT) -> float:
    """Gbit/s received by `server` at `address` from one TCP stream sent by `client`."""
    log = logdir / f"iperf3-{server.name}-{port}.log"
    argv = ["iperf3", "-s", "-1", "-B", address, "-p", str(port)]
    proc = processes.spawn(server, argv, log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while not _listening(server, port):
            if not processes.alive(proc) or time.monotonic() > deadline:
                raise IperfError(f"iperf3 server on {address}:{port} in {server.name} did "
                                 f"not listen: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.02)
        run = commands.run_in(client, ["iperf3", "-c", address, "-p", str(port), "-t",
                                       str(seconds), "-J"], check=False, timeout=seconds + 30)
    finally:
        processes.stop(proc, timeout=2)
    try:
        report = json.loads(run.stdout)
        return float(report["end"]["sum_received"]["bits_per_second"]) / 1e9
    except (json.JSONDecodeError, KeyError, TypeError):
        detail = run.stdout[-500:] or run.stderr[-500:]
        raise IperfError(f"iperf3 {client.name} -> {address}: {detail}") from None
