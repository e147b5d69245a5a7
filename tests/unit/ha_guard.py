"""What the HA monitor's unit tests share: a `since` long past, a heard host status, and
the mass-silence guard's process state reset around each test (an autouse fixture: a
module imports it to have it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from atwill.controller.ha import silence_guard

SINCE = dt.datetime(2000, 1, 1)
HEARD = {"agent_heard": True}


@pytest.fixture(autouse=True)
def _guard_state() -> Iterator[None]:
    silence_guard._state, silence_guard._since = "", None
    yield
    silence_guard._state, silence_guard._since = "", None
