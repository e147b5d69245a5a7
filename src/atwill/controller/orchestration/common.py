"""What the orchestration routes share: Heat's error body, access checks, the engine."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ...core.errors import ApiError, Forbidden
from ...core.policy import MEMBER_ROLES, READER_ROLES, Credentials
from ..service import caller
from .engine import Engine

EXPLANATIONS = {
    400: "The server could not comply with the request since it is either malformed or "
         "otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the document you "
         "requested.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    409: "There was a conflict when trying to complete your request.",
}


def heat_error(err: ApiError) -> dict[str, Any]:
    """Heat's fault body; heatclient prints error.message (and error.type)."""
    kind = getattr(err, "heat_type", None) or err.title.replace(" ", "")
    return {"code": err.status, "title": err.title,
            "explanation": EXPLANATIONS.get(err.status, err.title),
            "error": {"message": err.message, "type": kind, "traceback": None}}


def engine(request: Request) -> Engine:
    return request.app.state.engine


def allow(request: Request, project_id: str, action: str, write: bool) -> Credentials:
    """The caller, if they may act on stacks of project_id (member to change, reader to read)."""
    creds = caller(request)
    roles = MEMBER_ROLES if write else READER_ROLES
    same = creds.project_id == project_id
    if creds.is_admin or (same and creds.roles & roles):
        return creds
    if creds.reads_all and not write:
        return creds
    raise Forbidden(f"You are not authorized to complete {action} action.")
