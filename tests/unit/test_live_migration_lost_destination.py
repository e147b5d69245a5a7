"""A live migration whose destination's node goes down: the source is told to cancel,
and the migration ends in error with the reason, the guest staying on its source. One
whose source is known off (fenced or forced down) mid-way: its destination says whether
the guest arrived, and that settles the migration."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from atwill.controller.db.models import Instance, Migration, Node
from atwill.controller.servers.live_migration_agents import (
    annotate,
    incoming,
    lost_source,
    report,
    settle_lost_sources,
)
from tests.unit.live_migration_rows import made

# session: tests/unit/conftest.py




def _running(record: Migration) -> dict:
    return {record.instance_uuid: {"state": "running",
                                   "migration": {"migration": record.id, "status": "running"}}}


def test_a_running_migration_to_a_down_node_is_cancelled_by_its_source_then_in_error(
        session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    report(session, src, _running(record))
    assert (record.status, record.abort_requested) == ("running", False)  # destination up
    dst.state = "down"
    report(session, src, _running(record))
    assert (record.status, record.abort_requested) == ("running", True)
    spec = [{"id": inst.id}]
    annotate(session, src, spec)
    assert spec[0]["migrate_to"]["abort"] is True  # what the source's agent is given
    cancelled = {inst.id: {"migration": {"migration": record.id, "status": "cancelled"}}}
    report(session, src, cancelled)
    assert record.status == "error" and "node2 went down" in (record.message or "")
    assert (inst.node_id, inst.task_state) == (src.id, None)


def test_a_switch_over_before_the_cancel_still_completes(session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    dst.state = "down"
    report(session, src, _running(record))
    done = {inst.id: {"migration": {"migration": record.id, "status": "completed"}}}
    report(session, src, done)  # the guest already runs there: it is where it is
    assert (record.status, inst.node_id) == ("completed", dst.id)


def test_a_preparing_migration_to_a_down_node_ends_at_once(session: Session) -> None:
    src, dst, inst, record = made(session, "preparing")
    dst.state = "down"
    report(session, src, {})
    assert record.status == "error" and "went down" in (record.message or "")
    assert inst.task_state is None and inst.node_id == src.id


def test_a_user_abort_stays_cancelled(session: Session) -> None:
    src, _, inst, record = made(session, "running")
    record.abort_requested = True
    report(session, src, {inst.id: {"migration": {"migration": record.id,
                                                  "status": "cancelled"}}})
    assert record.status == "cancelled"


def test_a_destination_removed_meanwhile_is_lost_too(session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    session.delete(dst)  # `atwill node remove --force` while the migration ran
    session.flush()
    report(session, src, _running(record))
    assert record.abort_requested and "went down" in (record.message or "")


# a source known off -------------------------------------------------------------
def _fenced(node: Node) -> None:
    node.state, node.fence_state = "down", "ok"
    node.fenced_at = dt.datetime(2026, 12, 6)


def _asked(session: Session, dst: Node, inst: Instance) -> dict:
    (spec,) = [s for s in incoming(session, dst) if s["id"] == inst.id]
    return spec["incoming"]


def _says(record: Migration, **incoming_entry: object) -> dict:
    return {record.instance_uuid: {"state": "paused", "incoming": {
        "migration": record.id, **incoming_entry}}}


def test_a_silent_source_not_known_off_settles_nothing(session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    src.state = "down"  # silent, perhaps only cut off: it may still run the guest
    settle_lost_sources(session)
    assert (record.status, record.message, inst.task_state) == ("running", None, "migrating")
    assert "source_lost" not in _asked(session, dst, inst)


def test_the_destination_that_runs_the_guest_completes_the_migration(session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    _fenced(src)
    settle_lost_sources(session)
    assert (record.status, record.message) == ("running", lost_source(record))
    assert _asked(session, dst, inst)["source_lost"] is True
    report(session, dst, _says(record, nbd_port=10809, port=49152))  # not answered yet
    assert record.status == "running"
    report(session, dst, _says(record, nbd_port=10809, port=49152, arrived=True))
    assert (record.status, inst.node_id, inst.task_state) == ("completed", dst.id, None)


def test_a_guest_that_never_arrived_ends_the_migration_in_error(session: Session) -> None:
    src, dst, inst, record = made(session, "running")
    src.state, src.forced_down = "down", True  # the operator vouches that it is off
    settle_lost_sources(session)
    report(session, dst, _says(record, error="the guest had not arrived"))
    assert (record.status, inst.node_id, inst.task_state) == ("error", src.id, None)
    assert "node1 went down during the migration" in (record.message or "")
    settle_lost_sources(session)  # once settled, nothing more
    assert record.status == "error"


@pytest.mark.parametrize("case", ["preparing", "destination down"])
def test_with_nothing_sent_or_nobody_to_ask_it_ends_at_once(session: Session,
                                                            case: str) -> None:
    src, dst, inst, record = made(session, "preparing" if case == "preparing" else "running")
    _fenced(src)
    if case == "destination down":
        dst.state = "down"
    settle_lost_sources(session)
    assert (record.status, record.message, inst.task_state) == (
        "error", lost_source(record), None)
