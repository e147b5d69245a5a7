"""A stack left in progress by a stopped controller is settled to FAILED at the next start."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from atwill.controller.db.orchestration import Stack, StackEvent, StackResource
from atwill.controller.db.session import Database, migrate
from atwill.controller.orchestration.app import housekeeping


def test_stacks_in_progress_are_failed_with_a_reason(db: Database) -> None:
    migrate(db.engine)
    with db.session() as session:
        for name, status in (("busy", "IN_PROGRESS"), ("done", "COMPLETE")):
            session.add(Stack(id=f"id-{name}", name=name, project_id="p", user_id="u",
                              action="CREATE", status=status))
        session.flush()
        session.add(StackResource(stack_id="id-busy", name="net", type="OS::Neutron::Net",
                                  action="CREATE", status="IN_PROGRESS"))
    housekeeping(SimpleNamespace(db=db))
    with db.session() as session:
        busy, done = session.get(Stack, "id-busy"), session.get(Stack, "id-done")
        assert (busy.action, busy.status) == ("CREATE", "FAILED")
        assert "interrupted" in busy.status_reason and "restarted" in busy.status_reason
        assert done.status == "COMPLETE"
        row = session.scalar(select(StackResource))
        assert row.status == "FAILED"
        events = list(session.scalars(select(StackEvent)))
        assert [(e.resource_name, e.status) for e in events] == [("busy", "FAILED")]
