"""/cluster/v1/usage-events: the server lifecycle log for billing (cloud admins).

Followed by id: each page names the id to ask from next (`since`), so an exporter that
keeps that number gets every event once, across controller restarts.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import usage_events as rules
from ...core.errors import BadRequest
from ...core.policy import Credentials
from ..db.models import UsageEvent
from ..service import authorize, caller, controller

router = APIRouter()
MAX_LIMIT = 1000


@router.get("/v1/usage-events", summary="Server lifecycle events for billing, by id")
def usage_events_get(request: Request, creds: Credentials = Depends(caller),
                     since: int = Query(default=0, ge=0, description="Events after this id"),
                     limit: int = Query(default=100, ge=1, le=MAX_LIMIT),
                     project_id: str | None = Query(default=None, max_length=64),
                     instance_id: str | None = Query(default=None, max_length=36),
                     event_type: str | None = Query(default=None, max_length=64)) -> dict:
    authorize(creds, "cluster:usage_events:list")
    with controller(request).db.session() as session:
        events = page(session, since, limit, project_id, instance_id, event_type)
    return {"events": events, "next_since": events[-1]["id"] if events else since}


def page(session: Session, since: int, limit: int, project_id: str | None = None,
         instance_id: str | None = None, event_type: str | None = None) -> list[dict]:
    """Up to limit events after id since, oldest first."""
    if event_type is not None and event_type not in rules.TYPES:
        raise BadRequest(f"Invalid event_type {event_type!r}: one of "
                         f"{', '.join(rules.TYPES)}.")
    query = select(UsageEvent).where(UsageEvent.id > since)
    if project_id is not None:
        query = query.where(UsageEvent.project_id == project_id)
    if instance_id is not None:
        query = query.where(UsageEvent.instance_id == instance_id)
    if event_type is not None:
        query = query.where(UsageEvent.event_type == event_type)
    rows = session.scalars(query.order_by(UsageEvent.id).limit(limit))
    return [rules.to_view(row) for row in rows]
