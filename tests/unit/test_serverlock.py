"""Server locks: Nova's locked_by, who may unlock, and the lock action's body."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest
from atwill.core.serverlock import locked_by, may_unlock, reason


def test_locked_by_is_the_side_of_the_caller() -> None:
    assert locked_by("p1", "p1") == "owner"
    assert locked_by("p1", "admin-project") == "admin"


@pytest.mark.parametrize(("recorded", "caller", "admin", "allowed"), [
    ("owner", "p1", False, True),
    ("admin", "p1", False, False),  # an owner cannot lift an admin's lock
    ("admin", "p1", True, True),
    ("owner", "other", True, True),
    (None, "p1", False, True),  # locks from before locked_by was recorded
])
def test_may_unlock(recorded: str | None, caller: str, admin: bool, allowed: bool) -> None:
    assert may_unlock(recorded, "p1", caller, admin) is allowed


def test_reason() -> None:
    assert reason(None, False) is None
    assert reason({}, False) is None
    assert reason({"locked_reason": "backup"}, True) == "backup"
    for args, allowed in (({"locked_reason": "x"}, False), ({"other": 1}, True),
                          ({"locked_reason": ""}, True), ({"locked_reason": "x" * 256}, True),
                          ({"locked_reason": 5}, True), ("text", True)):
        with pytest.raises(BadRequest):
            reason(args, allowed)
