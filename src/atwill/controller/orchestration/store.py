"""Reading and writing stacks, resources and events; every call is one short transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ...core.hot import template as hot_template
from ...core.hot.errors import StackNotFound
from ..context import Controller
from ..db.base import utcnow
from ..db.orchestration import Stack, StackEvent, StackResource
from .prepare import registry_types
from .scope import StackState
from .types.base import Made

STACK_TYPE = "OS::Heat::Stack"


def find(session: Session, project_id: str | None, ident: str,
         stack_id: str | None = None) -> Stack:
    """A stack of the project by id, or by name (and id), as Heat's stack identity."""
    query = select(Stack)
    if project_id is not None:
        query = query.where(Stack.project_id == project_id)
    if stack_id is not None:
        found = session.scalar(query.where(Stack.id == stack_id, Stack.name == ident))
    else:
        found = session.scalar(query.where(Stack.id == ident)) or session.scalar(
            query.where(Stack.name == ident))
    if found is None:
        raise StackNotFound(f"The Stack ({ident}) could not be found.")
    return found


def event(session: Session, stack: Stack, name: str, kind: str, physical: str | None,
          action: str, status: str, reason: str) -> None:
    session.add(StackEvent(stack_id=stack.id, resource_name=name, resource_type=kind,
                           physical_resource_id=physical or "", action=action,
                           status=status, reason=reason))


def set_stack(ctl: Controller, stack_id: str, action: str, status: str, reason: str) -> None:
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        if stack is None:
            return
        stack.action, stack.status, stack.status_reason = action, status, reason
        if action != "CREATE":
            stack.updated_at = utcnow()
        event(session, stack, stack.name, STACK_TYPE, stack.id, action, status, reason)


def set_resource(ctl: Controller, stack_id: str, name: str, action: str, status: str,
                 reason: str, made: Made | None = None,
                 properties: dict[str, Any] | None = None) -> None:
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        row = session.scalar(select(StackResource).where(
            StackResource.stack_id == stack_id, StackResource.name == name))
        if stack is None or row is None:
            return
        row.action, row.status, row.status_reason = action, status, reason
        row.updated_at = utcnow()
        if made is not None:
            row.physical_id, row.data = made.physical_id, dict(made.data)
        if properties is not None:
            row.properties = properties
        event(session, stack, name, row.type, row.physical_id, action, status, reason)


def fail_in_progress(ctl: Controller, stack_id: str, name: str, why: str) -> None:
    """A resource whose action was stopped part-way: FAILED, with why."""
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        row = session.scalar(select(StackResource).where(
            StackResource.stack_id == stack_id, StackResource.name == name))
        if stack is None or row is None or row.status != "IN_PROGRESS":
            return
        row.status, row.status_reason = "FAILED", f"{row.action} aborted ({why})"
        event(session, stack, name, row.type, row.physical_id, row.action, "FAILED",
              row.status_reason)


def restore_resource(ctl: Controller, stack_id: str, name: str, kind: str, made: Made,
                     properties: dict[str, Any]) -> None:
    """Put back what a rolled-back update replaced."""
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        row = session.scalar(select(StackResource).where(
            StackResource.stack_id == stack_id, StackResource.name == name))
        if stack is None or row is None:
            return
        row.type, row.physical_id, row.data = kind, made.physical_id, dict(made.data)
        row.properties, row.updated_at = properties, utcnow()
        row.action, row.status, row.status_reason = "ROLLBACK", "COMPLETE", "state changed"
        event(session, stack, name, kind, made.physical_id, "ROLLBACK", "COMPLETE",
              "state changed")


def restore_stack(ctl: Controller, stack_id: str, old: dict[str, Any]) -> None:
    """The template, environment, files and parameters from before a failed update."""
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        if stack is not None:
            stack.template, stack.environment = old["template"], old["environment"]
            stack.files, stack.parameters = old["files"], old["parameters"]


def adopt(ctl: Controller, child_id: str, parent_id: str) -> None:
    """A nested stack: hidden from the project's list, shown under its parent."""
    with ctl.db.session() as session:
        child = session.get(Stack, child_id)
        if child is not None:
            child.parent_id = parent_id


def retype(ctl: Controller, stack_id: str, name: str, kind: str) -> None:
    with ctl.db.session() as session:
        row = session.scalar(select(StackResource).where(
            StackResource.stack_id == stack_id, StackResource.name == name))
        if row is not None:
            row.type = kind


def drop_resources(ctl: Controller, stack_id: str, names: list[str]) -> None:
    with ctl.db.session() as session:
        session.execute(delete(StackResource).where(StackResource.stack_id == stack_id,
                                                    StackResource.name.in_(names)))


def drop_stack(ctl: Controller, stack_id: str) -> None:
    with ctl.db.session() as session:
        session.execute(delete(StackEvent).where(StackEvent.stack_id == stack_id))
        session.execute(delete(StackResource).where(StackResource.stack_id == stack_id))
        session.execute(delete(Stack).where(Stack.id == stack_id))


def state_of(stack: Stack, rows: list[StackResource], region: str) -> StackState:
    """The engine's view of a stored stack, its made resources loaded from their rows."""
    state = StackState(stack.id, stack.name, stack.project_id, stack.user_id,
                       hot_template.parse(stack.template), dict(stack.parameters),
                       dict(stack.files), region, stack.disable_rollback,
                       stack.timeout_mins, environment=dict(stack.environment or {}))
    registry_types(state.tmpl, state.environment.get("resource_registry") or {}, state.files)
    for row in rows:
        state.rows.add(row.name)
        if row.physical_id is not None:
            state.made[row.name] = Made(row.physical_id, dict(row.data))
            state.stored[row.name] = (row.type, dict(row.properties))
            if "config" in row.data:
                state.configs[row.physical_id] = row.data["config"]
    return state


def load(ctl: Controller, stack_id: str) -> tuple[StackState, dict[str, dict[str, Any]]]:
    """The state of a stack and each resource row's stored properties."""
    with ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        if stack is None:
            raise StackNotFound(f"The Stack ({stack_id}) could not be found.")
        rows = list(session.scalars(select(StackResource).where(
            StackResource.stack_id == stack_id)))
        return (state_of(stack, rows, ctl.settings.region),
                {r.name: dict(r.properties) for r in rows})
