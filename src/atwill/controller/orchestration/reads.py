"""What lives under a stack: outputs, resources, events, its template and environment."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.hot import nesting
from ..db.orchestration import Stack, StackEvent, StackResource
from ..service import controller
from . import store, views


def read(request: Request, session: Session, stack: Stack, tail: list[str]) -> Any:
    base = controller(request).base_url
    rows = list(session.scalars(select(StackResource).where(
        StackResource.stack_id == stack.id).order_by(StackResource.created_at,
                                                       StackResource.name)))
    if not tail:
        state = store.state_of(stack, rows, controller(request).settings.region)
        return {"stack": views.detail(base, stack, state)}
    head, rest = tail[0], tail[1:]
    if head == "outputs":
        state = store.state_of(stack, rows, controller(request).settings.region)
        return _outputs(state.outputs(), rest)
    if head == "resources":
        return _resources(request, session, base, stack, rows, rest)
    if head == "events" and not rest:
        return {"events": _events(request, session, base, stack, None)}
    if head == "template" and not rest:
        return stack.template
    if head == "environment" and not rest:
        return {"parameters": {}, "parameter_defaults": {}, "resource_registry":
                {"resources": {}}, "event_sinks": [], "encrypted_param_names": [],
                **(stack.environment or {})}
    if head == "files" and not rest:
        return stack.files
    raise NotFound("The resource could not be found.")


def _outputs(outputs: list[dict[str, Any]], rest: list[str]) -> dict[str, Any]:
    if not rest:
        return {"outputs": [{"output_key": o["output_key"], "description": o["description"]}
                            for o in outputs]}
    match = [o for o in outputs if o["output_key"] == rest[0]]
    if len(rest) > 1 or not match:
        raise NotFound(f"Specified output key {rest[0]} not found.")
    return {"output": match[0]}


def _resources(request: Request, session: Session, base: str, stack: Stack,
               rows: list[StackResource], rest: list[str]) -> dict[str, Any]:
    if not rest:
        detail = request.query_params.get("with_detail", "").lower() == "true"
        depth = _depth(request.query_params.get("nested_depth"))
        return {"resources": _listing(session, base, stack, rows, detail, depth)}
    match = [r for r in rows if r.name == rest[0]]
    if not match:
        raise NotFound(f"The Resource ({rest[0]}) could not be found in Stack {stack.name}.")
    if len(rest) == 1:
        return {"resource": views.resource(base, stack, match[0], full=True)}
    if rest[1:] == ["events"]:
        return {"events": _events(request, session, base, stack, rest[0])}
    if rest[1:] == ["metadata"]:
        return {"metadata": {}}
    raise NotFound("The resource could not be found.")


def _depth(raw: str | None) -> int:
    """nested_depth as Heat reads it: a non-negative integer, at most the nesting limit."""
    if raw in (None, ""):
        return 0
    try:
        depth = int(raw)
    except ValueError:
        raise BadRequest("Only integer is acceptable by 'nested_depth'.") from None
    if depth < 0:
        raise BadRequest("Only non-negative integer is acceptable by 'nested_depth'.")
    return min(depth, nesting.MAX_DEPTH)


def _listing(session: Session, base: str, stack: Stack, rows: list[StackResource],
             detail: bool, depth: int, parent: str | None = None) -> list[dict[str, Any]]:
    """The stack's resources, then, depth levels down, those of its nested stacks (each
    with parent_resource, as Heat lists them)."""
    out = []
    children = {c.id: c for c in session.scalars(select(Stack).where(
        Stack.parent_id == stack.id))} if depth else {}
    for row in rows:
        shown = views.resource(base, stack, row, detail)
        if parent is not None:
            shown["parent_resource"] = parent
        out.append(shown)
        child = children.get(row.physical_id or "")
        if child is None:
            continue
        shown["links"].append({"href": views.stack_url(base, child), "rel": "nested"})
        inner = list(session.scalars(select(StackResource).where(
            StackResource.stack_id == child.id).order_by(StackResource.created_at,
                                                         StackResource.name)))
        out += _listing(session, base, child, inner, detail, depth - 1, row.name)
    return out


def _events(request: Request, session: Session, base: str, stack: Stack,
            resource: str | None) -> list[dict[str, Any]]:
    query = request.query_params
    rows = select(StackEvent).where(StackEvent.stack_id == stack.id)
    if resource or query.get("resource_name"):
        rows = rows.where(StackEvent.resource_name == (resource or query["resource_name"]))
    descending = query.get("sort_dir", "asc") == "desc"
    if query.get("marker"):
        seq = session.scalar(select(StackEvent.seq).where(
            StackEvent.id == query["marker"], StackEvent.stack_id == stack.id))
        if seq is None:
            raise NotFound(f"The Event ({query['marker']}) could not be found.")
        rows = rows.where(StackEvent.seq < seq if descending else StackEvent.seq > seq)
    rows = rows.order_by(StackEvent.seq.desc() if descending else StackEvent.seq)
    if query.get("limit"):
        try:
            rows = rows.limit(max(0, int(query["limit"])))
        except ValueError:
            raise BadRequest("limit must be an integer") from None
    return [views.event(base, stack, e) for e in session.scalars(rows)]
