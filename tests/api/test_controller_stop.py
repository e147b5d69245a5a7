"""A controller told to stop exits at once, even while a client keeps an idle
keep-alive connection open over TLS (as every openstacksdk session does)."""

from __future__ import annotations

import os
import signal
import time

from tests.cloud import Cloud


def test_sigterm_with_an_idle_keep_alive_connection_stops_at_once() -> None:
    cloud = Cloud()
    try:
        cloud.init()
        cloud.start()
        assert cloud.proc is not None
        with cloud.http() as client:
            assert client.get("/identity/v3").status_code == 200  # the connection stays
            started = time.monotonic()
            os.killpg(cloud.proc.pid, signal.SIGTERM)
            # It waited for the idle client's TLS close_notify: 30 s (asyncio's bound).
            # uvicorn re-raises the signal once it has shut down: -SIGTERM is its exit.
            assert cloud.proc.wait(8) == -signal.SIGTERM
            assert time.monotonic() - started < 5
    finally:
        cloud.destroy()
