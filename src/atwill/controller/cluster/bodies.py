"""Request bodies of the node-facing routes, read with their own byte limits.

Heartbeats and console tails have limits of their own, apart from the controller's
general max_request_body; read_bytes cuts a chunked body off at the limit too.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ...core import json_edge
from ...core.errors import BadRequest
from ..service import describe_validation, read_bytes

Model = TypeVar("Model", bound=BaseModel)


async def read_model(request: Request, model: type[Model], limit: int, what: str) -> Model:
    """The body as model: 413 past limit, 400 for anything not valid JSON of that shape."""
    data = json_edge.loads(await read_bytes(request, limit, what))
    if not isinstance(data, dict):
        raise BadRequest(f"Malformed {what}: a JSON object is required.")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise BadRequest(describe_validation(err.errors())) from None
