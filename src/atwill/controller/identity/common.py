"""Small helpers shared by the identity resource modules."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy import Select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest, NotFound
from ...core.text import clean_name
from ..service import controller

T = TypeVar("T")


def base(request: Request) -> str:
    return controller(request).base_url + "/identity"


def listing(request: Request, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: items, "links": {"self": str(request.url), "next": None, "previous": None}}


def get_or_404(session: Session, model: type[T], ident: str, what: str) -> T:
    obj = session.get(model, ident)
    if obj is None:
        raise NotFound(f"Could not find {what}: {ident}.")
    return obj


def bool_query(value: str | None, name: str) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes", ""):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid value for '{name}': {value!r} is not a boolean.")


def filtered(query: Select, model: Any, request: Request, *names: str) -> Select:
    """Apply exact-match query filters (?name=, ?domain_id=, ?enabled=) that clients send."""
    params = request.query_params
    for name in names:
        if name not in params:
            continue
        value: Any = params[name]
        if name == "enabled":
            value = bool_query(value, name)
        query = query.where(getattr(model, name) == value)
    return query


# Keystone's schemas: project and domain names up to 64 characters, others up to 255.
NAME_LIMITS = {"project": 64, "domain": 64}


def name_of(body: dict[str, Any], where: str, required: bool = True) -> str | None:
    """A user, project, domain or role name: printable text of 1 to 64 or 255 characters."""
    name = body.get("name")
    if name is None and not required:
        return None
    limit = NAME_LIMITS.get(where, 255)
    if not isinstance(name, str) or not name.strip() or len(name) > limit:
        raise BadRequest(f"Invalid input for field '{where}.name': a non-empty string "
                         f"of at most {limit} characters is required.")
    return clean_name(name, f"{where}.name")
