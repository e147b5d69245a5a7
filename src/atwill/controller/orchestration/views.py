"""Stacks, resources and events as Heat's v1 API shows them."""

from __future__ import annotations

import json
from typing import Any

from ..db.base import iso
from ..db.orchestration import Stack, StackEvent, StackResource
from .scope import StackState


def stack_url(base: str, stack: Stack) -> str:
    return f"{base}/orchestration/v1/{stack.project_id}/stacks/{stack.name}/{stack.id}"


def shown_value(value: Any) -> str:
    """Parameter values are strings in a stack's body: lists joined, JSON dumped."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value)
    return str(value)


def summary(base: str, stack: Stack) -> dict[str, Any]:
    return {
        "id": stack.id, "stack_name": stack.name, "description":
            str(stack.template.get("description", "")),
        "stack_status": f"{stack.action}_{stack.status}",
        "stack_status_reason": stack.status_reason, "creation_time": iso(stack.created_at),
        "updated_time": iso(stack.updated_at), "deletion_time": None,
        "stack_owner": None, "parent": stack.parent_id, "stack_user_project_id":
            stack.project_id, "tags": stack.tags or None, "project": stack.project_id,
        "links": [{"href": stack_url(base, stack), "rel": "self"}],
    }


def detail(base: str, stack: Stack, state: StackState) -> dict[str, Any]:
    out = summary(base, stack)
    hidden = {n for n, p in state.tmpl.parameters.items() if p.hidden}
    values = {n: "******" if n in hidden else shown_value(v) for n, v in state.values.items()}
    values.update({"OS::stack_name": stack.name, "OS::stack_id": stack.id,
                   "OS::project_id": stack.project_id})
    out.update({
        "parameters": values, "outputs": state.outputs(), "capabilities": [],
        "notification_topics": [], "timeout_mins": stack.timeout_mins,
        "disable_rollback": stack.disable_rollback,
        "template_description": state.tmpl.description,
    })
    return out


def resource(base: str, stack: Stack, row: StackResource,
             full: bool = False) -> dict[str, Any]:
    url = stack_url(base, stack)
    out = {
        "resource_name": row.name, "logical_resource_id": row.name,
        "physical_resource_id": row.physical_id or "", "resource_type": row.type,
        "resource_status": f"{row.action}_{row.status}",
        "resource_status_reason": row.status_reason, "required_by": row.required_by,
        "creation_time": iso(row.created_at), "updated_time": iso(row.updated_at or
                                                                  row.created_at),
        "links": [{"href": f"{url}/resources/{row.name}", "rel": "self"},
                  {"href": url, "rel": "stack"}],
    }
    if full:
        out["description"] = ""
        out["attributes"] = {k: v for k, v in (row.data or {}).items() if k != "private_key"}
    return out


def event(base: str, stack: Stack, row: StackEvent) -> dict[str, Any]:
    url = stack_url(base, stack)
    return {
        "id": row.id, "event_time": iso(row.created_at), "resource_name": row.resource_name,
        "logical_resource_id": row.resource_name,
        "physical_resource_id": row.physical_resource_id,
        "resource_status": f"{row.action}_{row.status}",
        "resource_status_reason": row.reason,
        "links": [{"href": f"{url}/resources/{row.resource_name}/events/{row.id}",
                   "rel": "self"},
                  {"href": f"{url}/resources/{row.resource_name}", "rel": "resource"},
                  {"href": url, "rel": "stack"}],
    }
