"""bench fleet's heartbeat generator: SIMULATED nodes' beats from a few processes.

Each process holds a share of the simulated nodes; each node keeps one persistent TLS
connection (its own certificate: mutual TLS, as an agent) and sends the real
`POST /cluster/v1/nodes/{id}/heartbeat` once a second, in a random phase, its inventory
in the first beat only. The request is pre-serialized bytes (only the uptime moves), and
the reply is read by its Content-Length: no HTTP client library per beat. httpx with
coroutines cost the generator ~1.2 ms of CPU per beat (half a core at 401 beats/s), so a
2,000-node fleet could not be generated on this machine next to its controller.

The parent drives each process over a pipe: `start` (clear, measure), `stop` (answer the
latencies and errors since start, and the process's CPU seconds meanwhile), `quit`.
This module imports nothing heavy: the processes are spawned.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import ssl
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

INVENTORY = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 200, "arch": "x86_64",
             "cpu_model": "simulated", "accelerator": "tcg"}
REPLY_LIMIT = 1 << 16


@dataclass(frozen=True)
class Spec:
    """What a process needs to speak for one simulated node."""

    node_id: str
    cert: str
    key: str


def body(uptime: int, first: bool) -> bytes:
    """The beat an idle agent sends: no instances, an empty overlay status (the same
    bytes as json.dumps of that dict; only the uptime is formatted per beat)."""
    if first:
        return json.dumps({"overlay": {}, "running_vms": 0, "instances": {},
                           "host": {"uptime_s": uptime}, "inventory": INVENTORY},
                          separators=(",", ":")).encode()
    return LEAN % uptime


LEAN = b'{"overlay":{},"running_vms":0,"instances":{},"host":{"uptime_s":%d}}'


def head(host: str, node_id: str) -> bytes:
    """The request's line and headers up to the body's length (made once per node)."""
    return (f"POST /cluster/v1/nodes/{node_id}/heartbeat HTTP/1.1\r\nhost: {host}\r\n"
            "content-type: application/json\r\ncontent-length: ").encode()


def request(prefix: bytes, payload: bytes) -> bytes:
    return b"%s%d\r\n\r\n%s" % (prefix, len(payload), payload)


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   raw: bytes) -> int:
    """One request on the connection; the reply's status (its body read and dropped)."""
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        length = int(lower[at + 17:lower.index(b"\r\n", at + 2)])
    if length > REPLY_LIMIT:
        raise ValueError("reply too large")
    if length:
        await reader.readexactly(length)
    if b"\r\nconnection: close" in lower:
        raise ConnectionResetError("closed by the controller")
    return status


class Beats:
    """This process's nodes and what the current measurement saw."""

    def __init__(self, host: str, port: int, cacert: str) -> None:
        self.host, self.port, self.cacert = host, port, cacert
        self.measuring = False
        self.latencies: list[float] = []
        self.errors = 0

    def context(self, spec: Spec) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cacert)
        context.load_cert_chain(spec.cert, spec.key)
        return context

    async def node(self, spec: Spec) -> None:
        context = self.context(spec)
        prefix = head(f"{self.host}:{self.port}", spec.node_id)
        await asyncio.sleep(random.random())
        started, tick, first = time.monotonic(), 0, True
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            raw = request(prefix, body(round(time.monotonic() - started), first))
            sent = time.monotonic()
            ok = False
            try:
                if conn is None:
                    conn = await asyncio.open_connection(self.host, self.port, ssl=context)
                ok = await asyncio.wait_for(exchange(*conn, raw), 30) == 200
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError, TimeoutError):
                if conn is not None:
                    conn[1].close()
                conn = None
            if self.measuring and ok:
                self.latencies.append(time.monotonic() - sent)
            elif self.measuring:
                self.errors += 1
            first = first and not ok
            tick += 1
            await asyncio.sleep(max(0.0, started + tick - time.monotonic()))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve(pipe: Connection, specs: list[Spec], host: str, port: int,
                cacert: str) -> None:
    beats = Beats(host, port, cacert)
    tasks = [asyncio.create_task(beats.node(spec)) for spec in specs]
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[str] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    began = cpu()
    try:
        while (command := await commands.get()) != "quit":
            if command == "start":
                beats.latencies, beats.errors, began = [], 0, cpu()
                beats.measuring = True
            elif command == "stop":
                beats.measuring = False
                # add_reader left the pipe non-blocking (uvloop): a phase's latencies
                # beyond the pipe's buffer failed with EAGAIN (two controller workers,
                # 2,000 nodes). The parent reads them now: block until they are sent.
                os.set_blocking(pipe.fileno(), True)
                pipe.send((beats.latencies, beats.errors, cpu() - began))
                os.set_blocking(pipe.fileno(), False)
    finally:
        loop.remove_reader(pipe.fileno())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def child(pipe: Connection, specs: list[Spec], host: str, port: int, cacert: str) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(serve(pipe, specs, host, port, cacert))
    else:
        uvloop.run(serve(pipe, specs, host, port, cacert))


class Generator:
    """The beat processes of one run (spawned: nothing of the parent's state shared)."""

    def __init__(self, specs: list[Spec], host: str, port: int, cacert: str,
                 processes: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self.pipes: list[Connection] = []
        processes = max(1, min(processes, len(specs)))
        for index in range(processes):
            mine, theirs = context.Pipe()
            proc = context.Process(target=child, daemon=True, name=f"fleet-beats-{index}",
                                   args=(theirs, specs[index::processes], host, port, cacert))
            proc.start()
            theirs.close()
            self.procs.append(proc)
            self.pipes.append(mine)

    def start(self) -> None:
        for pipe in self.pipes:
            pipe.send("start")

    def stop(self) -> tuple[list[float], int, float]:
        """Latencies and errors since start, and the processes' CPU seconds meanwhile."""
        latencies: list[float] = []
        errors, seconds = 0, 0.0
        for pipe in self.pipes:
            pipe.send("stop")
        for pipe in self.pipes:
            got, failed, used = pipe.recv()
            latencies += got
            errors += failed
            seconds += used
        return latencies, errors, seconds

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("quit")
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for pipe in self.pipes:
            pipe.close()
