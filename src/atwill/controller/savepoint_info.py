"""What a transaction keeps pending in session.info, across its savepoints.

The revision bump (revision.py), the long-poll signal (revision_signal.py) and the
tracking of changed rows (node_scope.py) keep what the transaction will do at commit in
session.info. SQLAlchemy runs before_commit, after_commit and after_rollback for a
savepoint too (SessionTransaction.commit/rollback, SQLAlchemy 2.x): those listeners act
only when the event is the outermost transaction's (outermost()). A savepoint rolled back
takes the entries kept here (keep()) back to what they were when it opened: what was
bumped inside it is forgotten, what was bumped before it stays. A savepoint released
leaves them as they are, for the outermost commit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

# session.info key: per open savepoint (its SessionTransaction), a copy of the kept
# entries as they were when it opened (a key absent then is absent in the copy).
OPENED = "atwill.savepoint_info"
_kept: dict[str, Callable[[Any], Any]] = {}


def keep(key: str, copier: Callable[[Any], Any] = copy.deepcopy) -> None:
    """Restore session.info[key] when a savepoint rolls back (copier: how to copy its
    value, which may be changed in place meanwhile)."""
    _kept[key] = copier


def outermost(session: Session) -> bool:
    """In before_commit, after_commit or after_rollback: whether the transaction the
    event is for is the outermost one, not a savepoint. A savepoint is still open while
    its own events run, and every savepoint is closed before the outermost transaction
    commits or rolls back (Session.commit and Session.rollback end the innermost first)."""
    return not session.in_nested_transaction()


@event.listens_for(Session, "after_transaction_create")
def _opened(session: Session, transaction: SessionTransaction) -> None:
    if not transaction.nested:
        return
    copied = {key: copier(session.info[key]) for key, copier in _kept.items()
              if key in session.info}
    session.info.setdefault(OPENED, {})[transaction] = copied


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    savepoint = session.get_nested_transaction()
    if savepoint is None:
        return  # the outermost transaction: each module drops its own entries
    copied = session.info.get(OPENED, {}).get(savepoint)
    if copied is None:
        return
    for key in _kept:
        if key in copied:
            session.info[key] = _kept[key](copied[key])
        else:
            session.info.pop(key, None)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    opened = session.info.get(OPENED)
    if opened is None:
        return
    opened.pop(transaction, None)
    if not opened or transaction.parent is None:
        session.info.pop(OPENED, None)
