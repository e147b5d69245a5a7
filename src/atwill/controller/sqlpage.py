"""Keyset pagination in SQL: one page of an ordered query, never the whole table.

Every list handler names its order as sort keys whose expressions never yield NULL
(coalesce them) and whose last key is unique (the id), so "the rows after the marker"
is one indexed range condition instead of a position in a list built in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import Session

from ..core.errors import BadRequest

# Rows read per round trip when a filter can only be judged in Python.
BATCH = 200
# Sort keys one list may be given (each a column of one table, so a few dozen at most):
# the marker's condition grows with the square of their number.
MAX_KEYS = 32


@dataclasses.dataclass(frozen=True)
class Key:
    """One sort expression (never NULL) and its direction."""

    expr: Any
    desc: bool = False


def distinct(keys: Sequence[Key]) -> list[Key]:
    """keys without the repeats of an earlier one (a repeat orders nothing more), and a
    400 past MAX_KEYS: `sort=id,id,…` must not make the marker's condition explode."""
    if len(keys) > MAX_KEYS:
        raise BadRequest(f"Too many sort keys: {len(keys)} given, at most {MAX_KEYS}.")
    kept: list[Key] = []
    for key in keys:
        if not any(_clause(key.expr).compare(_clause(k.expr)) for k in kept):
            kept.append(key)
    return kept


def _clause(expr: Any) -> Any:
    """The SQL expression of an ORM attribute (Thing.id), or expr itself."""
    return expr.__clause_element__() if hasattr(expr, "__clause_element__") else expr


def after(keys: Sequence[Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after values in the keys' order (ties broken by the later keys)."""
    clauses = []
    for i, key in enumerate(keys):
        beyond = key.expr < values[i] if key.desc else key.expr > values[i]
        ties = [keys[j].expr == values[j] for j in range(i)]
        clauses.append(and_(*ties, beyond))
    return or_(*clauses)


def ordered(keys: Sequence[Key]) -> list[Any]:
    keys = distinct(keys)
    return [k.expr.desc() if k.desc else k.expr.asc() for k in keys]


def marker_values(session: Session, stmt: Select, keys: Sequence[Key],
                  where: ColumnElement[bool]) -> list[Any] | None:
    """The sort values of the marker row (the one where selects) within stmt, so within
    what the caller may see; None when stmt holds no such row."""
    keys = distinct(keys)
    probe = stmt.order_by(None).with_only_columns(*(k.expr for k in keys))
    row = session.execute(probe.where(where).limit(1)).first()
    return None if row is None else list(row)


def rows(session: Session, stmt: Select, keys: Sequence[Key], limit: int,
         start: Sequence[Any] | None = None,
         accept: Callable[[Any], bool] | None = None) -> tuple[list[Any], bool]:
    """Up to limit entities of stmt after start (sort values), and whether more remain.

    accept, when given, judges rows in Python (a regex, a derived status); rows are then
    read in batches until the page is full, so a selective filter costs more reads but
    never one read of everything.
    """
    keys = distinct(keys)
    width = limit + 1 if accept is None else max(limit + 1, BATCH)
    base = stmt.order_by(None).add_columns(*(k.expr for k in keys)).order_by(*ordered(keys))
    kept: list[Any] = []
    while True:
        query = base if start is None else base.where(after(keys, start))
        batch = session.execute(query.limit(width)).unique().all()
        for row in batch:
            if accept is None or accept(row[0]):
                kept.append(row[0])
            if len(kept) > limit:
                return kept[:limit], True
        if len(batch) < width:
            return kept, False
        start = list(batch[-1][1:])
