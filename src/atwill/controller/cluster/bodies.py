"""Request bodies of the node-facing routes, read with their own (small) byte limits.

The controller's general body limit trusts Content-Length; these routes read the
stream themselves, so a chunked body is cut off at the limit too.
"""

from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from ...core.errors import BadRequest, PayloadTooLarge
from ..service import describe_validation

Model = TypeVar("Model", bound=BaseModel)


async def read_bytes(request: Request, limit: int, what: str) -> bytes:
    """The whole body, refused with a 413 the moment it passes limit."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The {what} is larger than the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[Model], limit: int, what: str) -> Model:
    """The body as model: 413 past limit, 400 for anything not valid JSON of that shape."""
    raw = await read_bytes(request, limit, what)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest(f"Malformed {what}: it is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest(f"Malformed {what}: a JSON object is required.")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise BadRequest(describe_validation(err.errors())) from None
