"""Keystone-style lockout: N failed passwords lock an account (admin too) until it runs
out or an operator runs `atwill user unlock`; success resets the count."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.api.lockout_cloud import login, make_user, own_cloud
from tests.cloud import Cloud, unique

ATTEMPTS, DURATION = 3, 5


@pytest.fixture(scope="module")
def lcloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, lockout_failure_attempts=ATTEMPTS,
                         lockout_duration=DURATION)


def _fail(cloud: Cloud, name: str, times: int) -> None:
    with cloud.http() as client:
        for _ in range(times):
            resp = login(client, name, "wrong-password")
            assert resp.status_code == 401, resp.text


def test_admin_is_locked_and_the_cli_unlocks(lcloud: Cloud) -> None:
    admin_id = None
    try:
        _fail(lcloud, "admin", ATTEMPTS)
        with lcloud.http() as client:
            resp = login(client, "admin", lcloud.admin_password)
        assert resp.status_code == 401
        message = resp.json()["error"]["message"]
        assert message.startswith("The account is locked for user: ")
        admin_id = message.rsplit(" ", 1)[1].rstrip(".")
    finally:
        done = lcloud.atwill("user", "unlock", "admin", "--domain", "Default")
    assert admin_id and admin_id in done.stdout
    with lcloud.http() as client:
        assert login(client, "admin", lcloud.admin_password).status_code == 201


def test_lock_runs_out(lcloud: Cloud) -> None:
    name = unique("lock")
    make_user(lcloud, lcloud.token(), name, "right-pw-1")
    _fail(lcloud, name, ATTEMPTS)
    with lcloud.http() as client:
        assert login(client, name, "right-pw-1").status_code == 401
        time.sleep(DURATION + 0.5)
        assert login(client, name, "right-pw-1").status_code == 201
        # The lock that ran out starts a fresh count: one failure does not re-lock.
        assert login(client, name, "wrong").status_code == 401
        assert login(client, name, "right-pw-1").status_code == 201


def test_success_resets_the_count(lcloud: Cloud) -> None:
    name = unique("reset")
    make_user(lcloud, lcloud.token(), name, "right-pw-2")
    with lcloud.http() as client:
        for _ in range(3):
            _fail(lcloud, name, ATTEMPTS - 1)
            assert login(client, name, "right-pw-2").status_code == 201


def test_unknown_user_and_unlock_of_nobody(lcloud: Cloud) -> None:
    _fail(lcloud, unique("nobody"), ATTEMPTS + 1)
    proc = lcloud.atwill("user", "unlock", unique("nobody"), check=False)
    assert proc.returncode == 1 and "no user" in proc.stderr


def test_password_change_guesses_are_counted(lcloud: Cloud) -> None:
    # A stolen token must not be a way to guess the user's password without a lockout.
    name = unique("change")
    user_id = make_user(lcloud, lcloud.token(), name, "right-pw-3")
    with lcloud.http() as client:
        token = login(client, name, "right-pw-3").headers["X-Subject-Token"]
        for _ in range(ATTEMPTS):
            resp = client.post(f"/identity/v3/users/{user_id}/password",
                               headers={"X-Auth-Token": token},
                               json={"user": {"original_password": "guess",
                                              "password": "new-pw-3"}})
            assert resp.status_code == 401, resp.text
        resp = client.post(f"/identity/v3/users/{user_id}/password",
                           headers={"X-Auth-Token": token},
                           json={"user": {"original_password": "right-pw-3",
                                          "password": "new-pw-3"}})
        assert resp.status_code == 401
        assert resp.json()["error"]["message"].startswith("The account is locked for user: ")
        assert login(client, name, "right-pw-3").status_code == 401
