import datetime as dt

import pytest

from atwill.core.lockout import is_locked

T = dt.datetime(2026, 1, 1, 12, 0, 0)


@pytest.mark.parametrize("failures, last, now, attempts, duration, locked", [
    (5, T, T, 6, 1800, False),
    (6, T, T, 6, 1800, True),
    (6, T, T + dt.timedelta(seconds=1799), 6, 1800, True),
    (6, T, T + dt.timedelta(seconds=1800), 6, 1800, False),
    (9, T, T + dt.timedelta(days=9), 6, 0, True),  # 0: until unlocked
    (100, T, T, 0, 1800, False),  # lockout off
    (6, None, T, 6, 1800, False),
])
def test_is_locked(failures: int, last: dt.datetime | None, now: dt.datetime, attempts: int,
                   duration: int, locked: bool) -> None:
    assert is_locked(failures, last, now, attempts, duration) is locked
