"""The controller's ASGI app: every service mounted under one root."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from ..config import Settings
from . import background, metrics
from .cluster import app as cluster_app
from .cluster.heartbeat_lane import HeartbeatLane
from .compute import app as compute_app
from .context import Controller
from .dashboard import app as dashboard_app
from .identity import app as identity_app
from .image import app as image_app
from .middleware import RequestContext
from .network import app as network_app
from .orchestration import app as orchestration_app
from .peers.middleware import ScopeMiddleware
from .volume import app as volume_app

# The JSON APIs, each a sub-app of its own; the dashboard (forms and pages) is apart.
APIS = (("/identity", identity_app.create), ("/compute", compute_app.create),
        ("/image", image_app.create), ("/cluster", cluster_app.create),
        ("/network", network_app.create), ("/volume", volume_app.create),
        ("/orchestration", orchestration_app.create))
MOUNTS = (*(prefix for prefix, _ in APIS), "/dashboard")


def create_app(settings: Settings, ctl: Controller | None = None,
               housekeeping: bool = True) -> HeartbeatLane:
    """housekeeping=False: a worker among several, whose parent did it before forking."""
    ctl = ctl or Controller.from_settings(settings)
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Before serving, no upload can be in flight: recover those a previous process cut.
        if housekeeping:
            clean_up(ctl)
        ctl.keys.prepare()  # the token keys, imported into the database at the first start
        tasks = background.start(ctl)
        try:
            yield
        finally:
            await background.stop(tasks)
            ctl.db.dispose()

    root = FastAPI(title="atwill", docs_url=None, redoc_url=None, openapi_url=None,
                   lifespan=lifespan)
    root.state.ctl = ctl
    apps = {prefix: factory(ctl) for prefix, factory in APIS}
    for prefix, sub in apps.items():
        root.mount(prefix, sub)
    orchestration = apps["/orchestration"]
    dashboard = dashboard_app.create(ctl)
    root.mount("/dashboard", dashboard)
    metrics.install(root, ctl)

    @root.get("/", response_model=None)
    def index(request: Request) -> dict | Response:
        if "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/dashboard/", status_code=303)
        base = ctl.base_url
        return {"name": "atwill", "services": {
            "identity": f"{base}/identity", "compute": f"{base}/compute/v2.1",
            "image": f"{base}/image"}}

    logging.getLogger("atwill").debug("controller app built for %s", ctl.base_url)
    # X-Scope: services answered by peer clouds, and peers' users mapped here.
    app = RequestContext(ScopeMiddleware(root, ctl), settings.max_request_body, MOUNTS)
    # The dashboard calls the services in-process, with the browser's token, through the
    # same request ids, log lines and body limits as any client.
    dashboard.state.api = app
    # The orchestration engine makes resources through the same app, as the stack's owner.
    orchestration_app.serve_through(orchestration, app)
    # A node's beat that only says it lives skips the stack (cluster/heartbeat_lane.py).
    return HeartbeatLane(app, ctl)


def clean_up(ctl: Controller) -> None:
    """What a previous controller process left half done (before anything is served)."""
    image_app.housekeeping(ctl)
    orchestration_app.housekeeping(ctl)
