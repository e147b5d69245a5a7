"""Instance actions and their events (`openstack server event list`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.base import utcnow
from ..db.models import InstanceAction, InstanceActionEvent


def start(session: Session, instance_id: str, action: str, request_id: str,
          user_id: str | None, project_id: str | None) -> InstanceAction:
    record = InstanceAction(instance_id=instance_id, action=action, request_id=request_id,
                            user_id=user_id, project_id=project_id)
    session.add(record)
    session.flush()
    return record


def latest(session: Session, instance_id: str) -> InstanceAction | None:
    return session.scalar(select(InstanceAction).where(
        InstanceAction.instance_id == instance_id).order_by(InstanceAction.id.desc()).limit(1))


def event(session: Session, instance_id: str, name: str, host: str | None,
          result: str | None = "Success", detail: str | None = None) -> None:
    """Record one finished event on the instance's latest action."""
    record = latest(session, instance_id)
    if record is None:
        return
    now = utcnow()
    session.add(InstanceActionEvent(action_id=record.id, event=name, host=host, result=result,
                                    traceback=detail, start_time=now, finish_time=now))
    record.updated_at = now
    if result == "Error" and detail:
        record.message = detail
