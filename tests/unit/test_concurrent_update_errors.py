"""A transaction the database ended for a deadlock or a serialization failure (PostgreSQL)
or a write lock waited for too long (SQLite) is a 409 the client may retry, never a 500;
any other database failure stays unexpected (500)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from atwill.controller.service import make_service_app

with warnings.catch_warnings():
    # Starlette asks for httpx2, which this project does not install; httpx works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def client_raising(orig: Exception) -> TestClient:
    ctl = SimpleNamespace(settings=SimpleNamespace(max_request_body=1 << 20))
    app = make_service_app(ctl)  # type: ignore[arg-type]

    @app.get("/boom")
    def boom() -> None:
        raise OperationalError("UPDATE volumes ...", {}, orig)

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("orig", [
    Driver("deadlock detected\nDETAIL: Process 1 waits for ShareLock", "40P01"),
    Driver("could not serialize access due to concurrent update", "40001"),
    Driver("database is locked", None),
])
def test_contention_is_a_409(orig: Exception) -> None:
    resp = client_raising(orig).get("/boom")
    assert resp.status_code == 409, resp.text
    assert "Try again" in resp.json()["error"]["message"]


def test_other_database_failures_stay_500() -> None:
    resp = client_raising(Driver("disk I/O error", "58030")).get("/boom")
    assert resp.status_code == 500, resp.text
