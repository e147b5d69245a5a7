"""The cores and RAM a project's resizes in flight will add, for quota checks.

An upsize counts its new flavor only once the destination has the disk
(resize_agents.received); until then the instance row still holds the old one.
Creates and other resizes checked meanwhile must count that growth too, or they
could use the room the moving resize was granted (review finding).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import resize_states
from ..db.models import Migration


def pending_growth(session: Session, project_id: str) -> dict[str, int]:
    """{"cores": n, "ram": mb} that the project's moving resizes will add."""
    growth = {"cores": 0, "ram": 0}
    for old, new in session.execute(select(Migration.old_flavor, Migration.new_flavor).where(
            Migration.project_id == project_id, Migration.migration_type == "resize",
            Migration.status.in_(resize_states.MOVING))):
        if old and new:
            for resource, amount in resize_states.upsize(old, new).items():
                growth[resource] += amount
    return growth
