"""The dashboard's ASGI app, mounted at /dashboard by the controller."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from ..context import Controller
from . import (
    accounts,
    attachments,
    auth,
    cluster_map,
    console,
    flavors,
    images,
    instances,
    networks,
    node_page,
    operator,
    overview,
    quotas,
    roles,
    security,
    sessions,
    stacks,
    volumes,
)
from .client import ApiError
from .sessions import COOKIE
from .web import CsrfFailed, LoginRequired, base, redirect, render

STATIC = Path(__file__).parent / "static"
# Every page module; each has its `router`.
MODULES = (auth, overview, console, instances, images, volumes, attachments, stacks, networks,
           security, operator, node_page, accounts, flavors, roles, quotas, cluster_map)


class CachedStatic:
    """Static files with a caching header; their names change with their content's version."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append(
                    (b"cache-control", b"public, max-age=3600"))
            await send(message)
        await self.app(scope, receive, send_cached)


def create(ctl: Controller, api: ASGIApp | None = None) -> FastAPI:
    """The dashboard; `api` is the controller's root app, which its pages call in-process."""
    app = FastAPI(title="atwill dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctl = ctl
    app.state.api = api
    app.mount("/static", CachedStatic(StaticFiles(directory=STATIC)), name="static")
    for module in MODULES:
        app.include_router(module.router)

    @app.exception_handler(LoginRequired)
    def login_required(request: Request, _exc: LoginRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            return redirect(request, "/login")
        return render(request, "error.html", 403, code=403,
                      message="Your session has ended; please log in again.")

    @app.exception_handler(CsrfFailed)
    def csrf_failed(request: Request, _exc: CsrfFailed) -> Response:
        return render(request, "error.html", 403, code=403,
                      message="The form's security token is missing or wrong; reload the "
                              "page and try again.")

    @app.exception_handler(ApiError)
    def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            # The token was revoked or expired under the session: log in again.
            sess = getattr(request.state, "sess", None)
            if sess is not None:
                sessions.remove(ctl, sess.key)
            response = redirect(request, "/login")
            response.delete_cookie(COOKIE, path=base(request) or "/")
            return response
        status = exc.status if exc.status < 500 else 502
        return render(request, "error.html", status, code=status, message=exc.message)

    return app
