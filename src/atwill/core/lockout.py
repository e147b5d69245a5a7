"""Keystone's security_compliance lockout: too many failed passwords lock an account.

After `attempts` failed password logins in a row an account is locked for
`duration` seconds after the last failure (0: until an operator unlocks it).
`attempts` 0 turns lockout off. A success resets the count.
"""

from __future__ import annotations

import datetime as dt


def is_locked(failures: int, last_failure: dt.datetime | None, now: dt.datetime,
              attempts: int, duration: int) -> bool:
    """Whether an account with these counted failures is locked at `now`."""
    if attempts <= 0 or failures < attempts:
        return False
    if duration <= 0:
        return True
    return last_failure is not None and now < last_failure + dt.timedelta(seconds=duration)


def locked_message(user_id: str) -> str:
    return f"The account is locked for user: {user_id}."
