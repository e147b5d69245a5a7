"""A node's full heartbeat against a server's delete, on PostgreSQL.

A heartbeat claims its node's row first (an UPDATE of nodes), then applies the node's
report to its servers (lifecycle.report). A delete takes the server's row first
(FOR UPDATE, server_volumes_state.lock_for_delete), then its volumes, then the node's
row (placement.release). The report's UPDATE of the server then waited for the delete
while the delete waited for the node: PostgreSQL's deadlock error, one rolled back
(found by the review of the volume lock order; reproduced here first).
"""

from __future__ import annotations

import threading

from sqlalchemy import select, text

from atwill.controller.compute import server_volumes_state
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.servers import create_steps, lifecycle
from tests.unit.test_create_steps import CTL, _creds, _record, cloud  # noqa: F401
from tests.unit.test_server_delete_volume_lock_order import (
    WAIT,
    _postgres,
    _run,
    _until_waiting_or_done,
)


def _placed(db: Database) -> str:
    server_id = _record(db)
    with db.session() as session:
        create_steps.place(session, CTL, _creds(), [server_id])
    return server_id


def test_a_report_leaves_a_server_its_delete_holds_to_the_next_beat(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _placed(cloud)
    started = threading.Event()
    go_on = threading.Event()

    def delete() -> None:
        with cloud.session() as session:
            inst = session.get(Instance, server_id)
            assert inst is not None
            server_volumes_state.lock_for_delete(session, inst)
            started.set()
            go_on.wait(WAIT)
            session.execute(text("SET LOCAL lock_timeout = '8s'"))
            # placement.release's write of the node's row, after the server's.
            session.execute(text("UPDATE nodes SET vcpus_used = vcpus_used - 1 "
                                 "WHERE name = 'node-a'"))
            inst.deleted = True

    report_errors: list[BaseException] = []
    thread, errors = _run(delete)
    assert started.wait(WAIT)
    with cloud.session() as session:
        session.execute(text("SET LOCAL lock_timeout = '8s'"))
        node = session.scalars(select(Node).where(Node.name == "node-a")).one()
        # The heartbeat's claim: the node's row, first.
        session.execute(text("UPDATE nodes SET heartbeat_gap_peak = 0 "
                             "WHERE name = 'node-a'"))
        go_on.set()
        _until_waiting_or_done(cloud, thread)  # the delete waits for the node's row
        try:
            lifecycle.report(session, CTL, node, {server_id: {"state": "running"}})
            session.flush()
        except Exception as exc:  # noqa: BLE001 - asserted below
            report_errors.append(exc)
            session.rollback()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert report_errors == [] and errors == []
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        # The delete won; the report left the server alone (it is the next beat's).
        assert inst is not None and inst.deleted and inst.vm_state == "building"


def test_a_report_still_applies_to_servers_nobody_holds(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    server_id = _placed(cloud)
    with cloud.session() as session:
        node = session.scalars(select(Node).where(Node.name == "node-a")).one()
        lifecycle.report(session, CTL, node, {server_id: {"state": "running"}})
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.vm_state == "active"
