"""The WAN between two clouds for `bench scope`: a userspace relay in front of the peer
that holds every byte the same delay in each direction. This machine's kernel has no
sch_netem (`tc qdisc add ... netem` fails, as the lab's wanemu.py notes), so tc netem on a
veth or on a namespace's loopback cannot be used here."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

CHUNK = 1 << 16
# At most this many chunks held per direction (~1.5 MB, netem's default limit of 1000
# packets): past it the relay stops reading, so TCP's window, not an endless buffer,
# bounds what is in flight over the delayed path, as on a real WAN.
QUEUE_CHUNKS = 24


class DelayRelay:
    """A TCP relay in front of one port: bytes are held `delay` seconds in each direction,
    in order and not rate-limited (what netem's delay does to a flow)."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port, self.delay = host, target_port, 0.0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> int:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, self.host, 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        try:
            peer_r, peer_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.close()
            return
        try:
            with contextlib.suppress(asyncio.CancelledError):  # stop() ends every connection
                await asyncio.gather(self._pipe(client_r, peer_w),
                                     self._pipe(peer_r, client_w), return_exceptions=True)
        finally:
            for writer in (client_w, peer_w):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

        async def hold() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(hold())
        try:
            while data := await reader.read(CHUNK):
                await queue.put((time.monotonic() + self.delay, data))
        except OSError:
            pass
        await queue.put((0.0, b""))
        with contextlib.suppress(OSError):
            await sender
        with contextlib.suppress(OSError):
            writer.close()


@contextlib.contextmanager
def relay(target_port: int) -> Iterator[DelayRelay]:
    """The delaying relay in front of target_port (its delay is set per measurement)."""
    found = DelayRelay(target_port)
    found.start()
    try:
        yield found
    finally:
        found.stop()
