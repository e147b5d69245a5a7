"""Neutron's bulk create: {"networks": [...]} made all-or-nothing in one transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from . import quota

# One request may not make more than this many resources at once (Neutron has no such
# limit, but the body limit already bounds it; this keeps one transaction short).
MAX_ITEMS = 1000


def items(body: dict[str, Any], key: str, plural: str) -> tuple[bool, list[dict[str, Any]]]:
    """(bulk?, the item bodies) of a create: {key: {...}} or {plural: [{...}, ...]}."""
    if plural in body and key not in body:
        raw = body[plural]
        if not isinstance(raw, list) or not raw or \
                not all(isinstance(item, dict) for item in raw):
            raise BadRequest(f"Invalid input: '{plural}' must be a non-empty list of "
                             f"{key} objects.")
        if len(raw) > MAX_ITEMS:
            raise BadRequest(f"Invalid input: at most {MAX_ITEMS} {plural} per request.")
        return True, raw
    inner = body.get(key)
    if not isinstance(inner, dict) or plural in body:
        raise BadRequest(f"Invalid input: '{key}' (an object) or '{plural}' (a list) is "
                         "required.")
    return False, [inner]


def enforce_quota(session: Session, projects: Iterable[str], resource: str) -> None:
    """One OverQuota check per project for everything the batch makes there."""
    for project, count in Counter(projects).items():
        quota.enforce(session, project, resource, count)


def respond(made: list[dict[str, Any]], many: bool, key: str, plural: str) -> JSONResponse:
    body = {plural: made} if many else {key: made[0]}
    return JSONResponse(body, status_code=201)
