"""The Fernet token keys shared through the database (controller/keys.py): two
controllers on one PostgreSQL, the second (two worker processes) made from the first's
bundle; `atwill keys rotate` on either rotates for both. On SQLite, one controller keeps
its keys in the same table and rotates as before.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from atwill import pki
from atwill.controller.identity.token_cache import TTL
from atwill.controller.keys import RECHECK
from tests.api.aggregate_nodes import wait_for
from tests.api.test_controllers_ha import add_by_bundle
from tests.cloud import BIN, Cloud
from tests.conftest import fresh_database_url


@dataclass
class Pair:
    a: Cloud
    b: Cloud


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    for url in fresh_database_url("postgres"):
        a, b = Cloud(url), Cloud(url, workers=2)
        try:
            a.init()
            a.start()
            add_by_bundle(a, b, tmp_path_factory.mktemp("keysbundle"))
            yield Pair(a, b)
        finally:
            a.destroy()
            b.destroy()


def _validate(cloud: Cloud, subject: str) -> int:
    """GET /v3/auth/tokens on cloud for subject, with a token just issued there (a new
    connection each time: on a controller with several workers, any of them answers)."""
    with cloud.http(cloud.token()) as client:
        return client.get("/identity/v3/auth/tokens",
                          headers={"X-Subject-Token": subject}).status_code


def _rows(cloud: Cloud) -> list[tuple[int, str]]:
    engine = create_engine(cloud.db_url().replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(
                text("SELECT number, sealed FROM token_keys ORDER BY number"))]
    finally:
        engine.dispose()


def _refused_everywhere(pair: Pair, token: str) -> bool:
    return all(_validate(cloud, token) == 404 for cloud in (pair.a, pair.b) * 3)


def test_a_rotation_on_one_controller_holds_for_both(pair: Pair) -> None:
    rows = _rows(pair.a)
    assert [n for n, _ in rows] == [0, 1]  # imported from a's files at its first start
    # The files, renamed once imported (never imported again, review finding).
    assert not (pair.a.state_dir / "fernet-keys").exists()
    files = {(pair.a.state_dir / "fernet-keys.imported" / str(n)).read_text().strip()
             for n in (0, 1)}
    assert not any(key in sealed for key in files for _, sealed in rows)
    before_a, before_b = pair.a.token(), pair.b.token()

    pair.a.atwill("keys", "rotate")
    # Issued after the rotation by either: a encrypts with the key b had staged; b with
    # its primary until it reads the table (RECHECK), which a still holds.
    after_a, after_b = pair.a.token(), pair.b.token()
    for cloud in (pair.a, pair.b):
        for token in (before_a, before_b, after_a, after_b):
            assert _validate(cloud, token) == 200
    time.sleep(RECHECK + 0.5)
    late_b = pair.b.token()  # b's workers now encrypt with the new primary
    assert _validate(pair.a, late_b) == 200 and _validate(pair.b, late_b) == 200
    assert [n for n, _ in _rows(pair.a)] == [0, 1, 2]

    # One more rotation, on b this time (max_active_keys 3: staged, primary, one more),
    # retires key 1, which signed the tokens from before.
    pair.b.atwill("keys", "rotate")
    retired = time.monotonic()
    assert [n for n, _ in _rows(pair.b)] == [0, 2, 3]
    wait_for(lambda: _refused_everywhere(pair, before_a) and _refused_everywhere(
        pair, before_b), RECHECK + TTL + 2, "the retired key refused by both")
    assert time.monotonic() - retired <= RECHECK + TTL + 1
    for cloud in (pair.a, pair.b):
        assert _validate(cloud, late_b) == 200  # key 2, still kept
    assert "Traceback" not in pair.a.log() + pair.b.log()


def test_on_sqlite_one_controller_rotates_as_before() -> None:
    cloud = Cloud()
    try:
        cloud.init()
        cloud.start()
        old = cloud.token()
        assert [n for n, _ in _rows(cloud)] == [0, 1]
        proc = cloud.atwill("keys", "rotate")
        assert "key 2 is now primary" in proc.stdout
        assert _validate(cloud, old) == 200  # at once: this state directory's rotation
        cloud.atwill("keys", "rotate")
        cloud.atwill("keys", "rotate")
        assert _validate(cloud, old) == 404
        assert [n for n, _ in _rows(cloud)] == [0, 3, 4]
    finally:
        cloud.destroy()


def test_a_controller_with_another_ca_key_refuses_to_start_in_one_line(
        tmp_path: Path) -> None:
    cloud = Cloud()
    try:
        cloud.init()
        cloud.start()  # imports the key files, sealed with this CA's key
        cloud.stop()
        pki.create_ca(tmp_path / "other")
        shutil.copy(tmp_path / "other" / "ca-key.pem", cloud.state_dir / "pki" / "ca-key.pem")
        proc = subprocess.run(
            [str(BIN / "atwill"), "serve", "--state-dir", str(cloud.state_dir)],
            capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1
        assert "sealed with another cluster CA key" in proc.stderr + proc.stdout
        assert "Traceback" not in proc.stderr + proc.stdout
    finally:
        cloud.destroy()


def test_a_rotation_with_another_ca_key_is_refused_and_both_keep_serving(
        pair: Pair, tmp_path: Path) -> None:
    """Review finding: `atwill keys rotate` on a controller with another pki/ca-key.pem
    sealed a new staged key with it; within RECHECK every authenticated request on every
    controller was a 500, and restarts failed. Now refused, one line, nothing written."""
    stranger = tmp_path / "stranger"  # b's settings (the database), another CA key
    stranger.mkdir(mode=0o700)
    shutil.copy(pair.b.state_dir / "atwill.yaml", stranger / "atwill.yaml")
    pki.create_ca(stranger / "pki")
    before = _rows(pair.a)
    token = pair.a.token()
    proc = subprocess.run([str(BIN / "atwill"), "keys", "rotate", "--state-dir",
                           str(stranger)], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "another cluster CA key" in out and "Traceback" not in out
    assert _rows(pair.a) == before
    time.sleep(RECHECK + 0.5)
    for cloud in (pair.a, pair.b):
        for _ in range(3):  # any worker
            assert _validate(cloud, token) == 200
    assert "Traceback" not in pair.a.log() + pair.b.log()
