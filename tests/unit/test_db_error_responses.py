"""How a failed database transaction reaches the client: a connection lost under the
request is a 503 with Retry-After (the pool has dropped it; a retry gets a new one), not
a 500; contention stays a 409 the client may retry, but it is logged at ERROR with its
statement and counted, and its message claims only that the transaction was rolled back."""

from __future__ import annotations

import logging
import warnings
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import OperationalError

from atwill.controller.service import CONTENTION_LOG, make_service_app

with warnings.catch_warnings():
    # Starlette asks for httpx2, which this project does not install; httpx works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def client(error: OperationalError, **ctl_attrs: object) -> TestClient:
    ctl = SimpleNamespace(settings=SimpleNamespace(max_request_body=1 << 20), **ctl_attrs)
    app = make_service_app(ctl)  # type: ignore[arg-type]

    @app.post("/volumes/{vid}/action")
    def boom(vid: str) -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


def test_a_lost_connection_is_a_503_with_retry_after() -> None:
    error = OperationalError("SELECT volumes.id FROM volumes", {},
                             Driver("consuming input failed: server closed the connection "
                                    "unexpectedly"), connection_invalidated=True)
    resp = client(error).post("/volumes/v1/action")
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "1"
    assert "rolled back" in resp.json()["error"]["message"]


def test_other_failures_of_a_live_connection_stay_500() -> None:
    error = OperationalError("SELECT 1", {}, Driver("disk I/O error", "58030"))
    assert client(error).post("/volumes/v1/action").status_code == 500


def test_contention_is_a_counted_409_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry(auto_describe=False)
    counter = Counter("atwill_db_contention", "test", ["kind"], registry=registry)
    error = OperationalError("UPDATE volumes SET status=%(status)s\n WHERE volumes.id = "
                             "%(id)s", {}, Driver("deadlock detected\nDETAIL: Process 1 "
                                                  "waits for ShareLock", "40P01"))
    with caplog.at_level(logging.WARNING, logger="atwill.api"):
        resp = client(error, db_contention=counter).post("/volumes/v1/action")
    assert resp.status_code == 409, resp.text
    message = resp.json()["error"]["message"]
    assert "rolled back" in message and "Try again" in message
    assert "nothing was done" not in message
    [record] = [r for r in caplog.records if CONTENTION_LOG in r.getMessage()]
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "deadlock" in text and "POST /volumes/v1/action" in text
    assert "UPDATE volumes SET status=%(status)s WHERE volumes.id = %(id)s" in text
    assert registry.get_sample_value("atwill_db_contention_total",
                                     {"kind": "deadlock"}) == 1
