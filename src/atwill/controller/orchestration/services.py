"""atwill's own APIs, called in-process as a stack's owner: the same routes, the same policy."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session
from starlette.types import ASGIApp

from ..context import Controller
from ..db.models import Project, User


class ResourceFailure(Exception):
    """A service refused or failed a call; kind is how Heat names the failure."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


KINDS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
         409: "Conflict", 413: "OverLimit", 500: "InternalServerError"}


def mint_token(ctl: Controller, session: Session, user_id: str, project_id: str) -> str:
    """A token for the stack's owner on its project, with the roles they have now."""
    from ..identity.tokens import TokenService  # the identity service owns tokens

    user, project = session.get(User, user_id), session.get(Project, project_id)
    if user is None or project is None:
        raise ResourceFailure("Unauthorized", "The stack's owner or project no longer exists.")
    token, _validated = TokenService(ctl).issue(session, user, project, methods=("token",))
    return token


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and "message" in value:
                return str(value["message"])
        if "message" in body:
            return str(body["message"])
        if "NeutronError" in body:
            return str(body["NeutronError"].get("message"))
    return resp.text


class Api:
    """One owner's view of the cloud's services, answered by the controller's own app."""

    def __init__(self, app: ASGIApp, base_url: str, token: str) -> None:
        # A service's unexpected error is its 500 answer, which fails the resource as any
        # refusal does: raised here, it escaped the engine and left the resource
        # IN_PROGRESS until the stack timed out.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.client = httpx.AsyncClient(transport=transport, base_url=base_url, timeout=60,
                                        headers={"X-Auth-Token": token})

    async def close(self) -> None:
        await self.client.aclose()

    async def call(self, method: str, path: str, body: Any = None, ok_missing: bool = False,
                   headers: dict[str, str] | None = None) -> Any:
        resp = await self.client.request(method, path, json=body, headers=headers)
        if resp.status_code == 404 and ok_missing:
            return None
        if resp.status_code >= 400:
            raise ResourceFailure(KINDS.get(resp.status_code, "ResourceFailure"),
                                  _message(resp))
        if not resp.content:
            return {}
        return resp.json()

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Any:
        return await self.call("PUT", path, body, **kw)

    async def delete(self, path: str) -> None:
        await self.call("DELETE", path, ok_missing=True)

    async def find(self, plural: str, ref: str, base: str = "/network/v2.0") -> dict[str, Any]:
        """A network-API object by id or by unique name, as Heat's name-or-id properties."""
        key = plural.replace("-", "_")  # security-groups in the path, security_groups in bodies
        singular = key[:-1]
        found = await self.call("GET", f"{base}/{plural}/{ref}", ok_missing=True)
        if found:
            return found[singular]
        matches = await self.client.get(f"{base}/{plural}", params={"name": ref})
        items = matches.json().get(key, []) if matches.status_code == 200 else []
        if len(items) == 1:
            return items[0]
        if not items:
            raise ResourceFailure("NotFound", f"Unable to find {singular} with name or id "
                                  f"'{ref}'")
        raise ResourceFailure("PhysicalResourceNameAmbiguity",
                              f"Multiple physical resources were found with name ({ref}).")
