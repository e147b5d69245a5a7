"""Password logins per source address: a burst gets 429 with Retry-After before any hash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, text

from tests.api.lockout_cloud import login, make_user, own_cloud
from tests.cloud import Cloud, unique

RATE, BURST = 2.0, 6


@pytest.fixture(scope="module")
def rcloud(engine: str) -> Iterator[Cloud]:
    # Lockout far away: the failure count then counts the hashes computed for a user.
    yield from own_cloud(engine, login_rate=RATE, login_burst=BURST,
                         lockout_failure_attempts=1000)


def _failures(cloud: Cloud, user_id: str) -> int:
    engine = create_engine(cloud.db_url())
    try:
        with engine.connect() as conn:
            return conn.scalar(text("SELECT failed_auth_count FROM users WHERE id = :id"),
                               {"id": user_id})
    finally:
        engine.dispose()


def test_burst_is_throttled_before_hashing(rcloud: Cloud) -> None:
    name = unique("burst")
    user_id = make_user(rcloud, rcloud.token(), name, "right-pw-3")
    time.sleep(BURST / RATE + 0.5)  # a full bucket

    def attempt(_: int):
        with rcloud.http() as client:
            return login(client, name, "wrong-password")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(30)))
    refused = [r for r in answers if r.status_code == 429]
    denied = [r for r in answers if r.status_code == 401]
    assert len(refused) + len(denied) == 30
    # The burst, plus what refilled while it ran, got a hash; every other one did not.
    assert BURST <= len(denied) <= BURST + 4, [r.status_code for r in answers]
    assert _failures(rcloud, user_id) == len(denied)
    wait = int(refused[0].headers["Retry-After"])
    assert 1 <= wait <= 1 + 1 / RATE
    assert "Too many password logins" in refused[0].json()["error"]["message"]
    time.sleep(wait)
    with rcloud.http() as client:
        assert login(client, name, "right-pw-3").status_code == 201
    assert _failures(rcloud, user_id) == 0


def test_token_logins_are_not_throttled(rcloud: Cloud) -> None:
    time.sleep(1 / RATE + 0.1)
    token = rcloud.token()
    with rcloud.http() as client:
        for _ in range(BURST * 2):
            resp = client.post("/identity/v3/auth/tokens", json={"auth": {"identity": {
                "methods": ["token"], "token": {"id": token}}}})
            assert resp.status_code == 201, resp.text
