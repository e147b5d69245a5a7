"""What every page needs: the session, the form and its CSRF check, rendering."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from ..context import Controller
from ..db.models import Service
from . import sessions
from .client import Api, ApiError
from .sessions import Sess

TEMPLATES = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(default=True), trim_blocks=True,
                        lstrip_blocks=True)
# Pages load only their own scripts and styles; nothing frames them.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}
FORM_LIMIT = 256 * 1024
# The static files' version, in their URLs: a browser caches them (an hour) but asks
# again as soon as an upgrade changes them.
STATIC_VERSION = hashlib.sha256(b"".join(
    f.read_bytes() for f in sorted((Path(__file__).parent / "static").iterdir())
)).hexdigest()[:12]


class LoginRequired(Exception):
    """No valid session: the browser goes to the login page."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


class Form:
    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0].strip() if values else default

    def raw(self, name: str) -> str:
        """Unstripped, for passwords."""
        values = self.fields.get(name)
        return values[0] if values else ""

    def getlist(self, name: str) -> list[str]:
        return [v for v in self.fields.get(name, []) if v]


def ctl_of(request: Request) -> Controller:
    return request.app.state.ctl


def base(request: Request) -> str:
    return request.scope.get("root_path", "")


def source(request: Request) -> tuple[str, int]:
    client = request.client
    return (client.host, client.port) if client else ("127.0.0.1", 0)


def current(request: Request) -> Sess:
    sess = sessions.load(ctl_of(request), request.cookies.get(sessions.COOKIE))
    if sess is None:
        raise LoginRequired
    request.state.sess = sess
    return sess


def api(request: Request, sess: Sess | None = None) -> Api:
    return Api(request.app.state.api, sess.token if sess else None, source(request))


async def form(request: Request) -> Form:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise ApiError(413, f"The form is larger than the limit of {FORM_LIMIT} bytes.")
    return Form(parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))


async def checked_form(request: Request, sess: Sess) -> Form:
    """The posted form, after its CSRF token matched the session's (else 403)."""
    data = await form(request)
    if not sess.csrf_ok(data.get("csrf") or request.headers.get("x-csrf-token")):
        raise CsrfFailed
    return data


async def require_operator(request: Request, sess: Sess) -> Api:
    """The session's client, once the API agreed the user is a cloud admin (else its 403).

    Listing projects is the identity API's admin-only read: asking it (for one row) makes
    the pages' gate the API's own policy, not a second copy of it.
    """
    client = api(request, sess)
    await client.get("/identity/v3/projects", params={"name": sess.project_name or ""})
    return client


def whole_number(data: Form, name: str, label: str, low: int = 0) -> int:
    """A form field that must be a whole number of at least low: 400 with its label if not."""
    text = data.get(name)
    if not text.isdigit() or int(text) < low:
        raise ApiError(400, f"{label} must be a whole number of at least {low}, "
                            f"not {text[:40]!r}.")
    return int(text)


def check_header(request: Request, sess: Sess) -> None:
    if not sess.csrf_ok(request.headers.get("x-csrf-token")):
        raise CsrfFailed


def catalog_types(ctl: Controller) -> frozenset[str]:
    """The service types of the catalog's enabled services: the menu offers Volumes and
    Stacks only where block storage and orchestration are in it (an operator may have
    deleted or disabled them, as in Horizon's dashboards)."""
    with ctl.db.session() as session:
        return frozenset(session.scalars(select(Service.type).where(
            Service.enabled.is_(True))))


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    sess = getattr(request.state, "sess", None)
    html = TEMPLATES.get_template(name).render(
        base=base(request), sess=sess, csrf=sess.csrf if sess else "", path=request.url.path,
        static_version=STATIC_VERSION,
        services=catalog_types(ctl_of(request)) if sess else frozenset(), **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def redirect(request: Request, where: str) -> RedirectResponse:
    return RedirectResponse(base(request) + where, status_code=303)
