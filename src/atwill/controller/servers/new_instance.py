"""A new server's row and its create event, written in one statement instead of a flush.

The ORM's flush of a new Instance is two round trips on PostgreSQL (the INSERT, then the
usage event its after_insert hook writes) and most of a create's client CPU in
`atwill bench scheduler`. insert() writes the same two rows — every column as the flush
would (Python defaults applied on the object first), the event from the hook's own
usage_events.created_row — in one statement on PostgreSQL (a data-modifying CTE) and two
Core statements on SQLite, then registers the object with the session as the flush does
(persistent, unmodified, new in this transaction), so nothing is flushed for it again.
node_scope learns of the row as its before_flush would have (an Instance changed; its
node, if it has one).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    String,
    TextClause,
    bindparam,
    inspect,
    null,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Null

from .. import node_scope
from ..db import usage_events
from ..db.models import Instance, UsageEvent

_INSTANCES = Instance.__table__
_EVENTS = UsageEvent.__table__
_EVENT_COLUMNS = [c for c in _EVENTS.columns if c.name != "id"]  # the id is the sequence's
_INSERT_INSTANCE = _INSTANCES.insert()
_STATEMENTS: dict[tuple[str, bool], TextClause] = {}
_JSON_COLUMNS = frozenset(c.name for c in _INSTANCES.columns if isinstance(c.type, JSON))


def _both(conn: Connection, as_record: bool) -> TextClause:
    """PostgreSQL: both INSERTs in one statement, built once per dialect. as_record: the
    server's row is one JSON parameter (json_populate_record), not one per column: psycopg
    caches the conversion of a query with at most 50 parameters only (65 here), which
    cost ~15 % of a placement's client CPU."""
    key = (conn.dialect.name, as_record)
    if key not in _STATEMENTS:
        quote = conn.dialect.identifier_preparer.quote

        def names(columns: list[Column[Any]]) -> str:
            return ", ".join(quote(c.name) for c in columns)

        def values(table: str, columns: list[Column[Any]], prefix: str) -> str:
            return (f"INSERT INTO {quote(table)} ({names(columns)})"
                    f" VALUES ({', '.join(f':{prefix}{c.name}' for c in columns)})")

        instance_columns = list(_INSTANCES.columns)
        events = [bindparam(f"e_{c.name}", type_=c.type) for c in _EVENT_COLUMNS]
        if as_record:
            instance = (f"INSERT INTO {quote('instances')} ({names(instance_columns)}) "
                        f"SELECT {names(instance_columns)} FROM json_populate_record("
                        f"NULL::{quote('instances')}, CAST(:instance AS json))")
            binds = [bindparam("instance", type_=String), *events]
        else:
            instance = values("instances", instance_columns, "i_")
            binds = [*[bindparam(f"i_{c.name}", type_=c.type) for c in instance_columns],
                     *events]
        _STATEMENTS[key] = text(f"WITH new_instance AS ({instance}) "
                                f"{values('usage_events', _EVENT_COLUMNS, 'e_')}"
                                ).bindparams(*binds)
    return _STATEMENTS[key]


def _record(row: dict[str, Any]) -> str | None:
    """The row as json_populate_record reads it (a column left out is SQL NULL); None when
    it cannot say it: an explicit None in a JSON column is JSON null in the flush's row."""
    record: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, Null):
            continue
        if value is None and name in _JSON_COLUMNS:
            return None
        record[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return json.dumps(record)


def _defaults(inst: Instance) -> dict[str, Any]:
    """Every column's value as the flush would insert it; the defaults set on inst too.
    (An explicit None in a JSON column is JSON null, as the flush writes it; one never set
    is SQL NULL.)"""
    row: dict[str, Any] = {}
    for prop in inspect(Instance).column_attrs:
        column = prop.columns[0]
        if prop.key not in inst.__dict__:
            default = column.default
            if default is None:  # the flush leaves it out: SQL NULL, even in a JSON column
                setattr(inst, prop.key, None)
                row[column.name] = null() if isinstance(column.type, JSON) else None
                continue
            elif default.is_callable:
                value = default.arg(None)  # type: ignore[attr-defined]
            elif default.is_scalar:
                value = default.arg  # type: ignore[attr-defined]
            else:  # a SQL expression default: none on Instance; the flush's job
                raise TypeError(f"instances.{column.name}: default not computed here")
            setattr(inst, prop.key, value)
        row[column.name] = getattr(inst, prop.key)
    return row


def track(session: Session, node_id: str | None) -> None:
    """Tell node_scope an Instance changed in this transaction (on node_id), as its
    before_flush does for a row the ORM writes."""
    touched = session.info.get(node_scope.TRACK)
    if touched is None:
        touched = session.info[node_scope.TRACK] = node_scope.Touched()
    touched.others.add("Instance")
    if node_id:
        touched.nodes.add(node_id)


def insert(session: Session, inst: Instance) -> Instance:
    """Write the new (transient) inst and its create event; inst is then persistent."""
    if not inspect(inst).transient:
        raise ValueError("only a new Instance, not yet in a session, is inserted here")
    row = _defaults(inst)
    event = usage_events.created_row(inst)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        record = _record(row)
        params = ({"instance": record} if record is not None
                  else {f"i_{k}": v for k, v in row.items()})
        params.update({f"e_{c.name}": event[c.name] for c in _EVENT_COLUMNS})
        conn.execute(_both(conn, record is not None), params)
    else:
        conn.execute(_INSERT_INSTANCE, row)
        conn.execute(usage_events.INSERT, event)
    # What the flush does with a row it inserted (private, but what the flush itself
    # calls): persistent, unmodified, and new in this transaction, so that a rollback
    # makes it transient again as it would a flushed one (tests hold this).
    session.add(inst)
    session._register_persistent({inspect(inst)})  # noqa: SLF001
    track(session, inst.node_id)
    return inst
