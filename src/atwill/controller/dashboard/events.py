"""Server-sent events: a page's rows pushed when they change, not polled by the browser.

The stream re-reads when a cluster change commits in this process, or every few
seconds for what changes elsewhere (heartbeats, other replicas); it sends only when
what the user would see changed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from .. import revision_signal
from .client import ApiError

REREAD = 2.0
KEEPALIVE = 15.0
# The browser's EventSource reconnects by itself; a bounded stream never pins a worker.
LIFETIME = 300.0


def stream(request: Request, fetch: Callable[[], Awaitable[Any]]) -> StreamingResponse:
    return StreamingResponse(_events(request, fetch), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store",
                                      "X-Accel-Buffering": "no"})


async def _events(request: Request, fetch: Callable[[], Awaitable[Any]]) -> AsyncIterator[str]:
    started = last_sent = time.monotonic()
    last: Any = None
    yield "retry: 3000\n\n"
    while time.monotonic() - started < LIFETIME:
        wakeup = revision_signal.changed.subscribe()
        try:
            data = await fetch()
        except ApiError as error:
            revision_signal.changed.unsubscribe(wakeup)
            # Logged out or token gone: tell the page, and stop for good.
            yield f"event: end\ndata: {json.dumps({'status': error.status})}\n\n"
            return
        if data != last:
            last, last_sent = data, time.monotonic()
            yield f"data: {json.dumps(data)}\n\n"
        elif time.monotonic() - last_sent > KEEPALIVE:
            last_sent = time.monotonic()
            yield ": keepalive\n\n"
        if await request.is_disconnected():
            revision_signal.changed.unsubscribe(wakeup)
            return
        await revision_signal.changed.wait(wakeup, REREAD)
