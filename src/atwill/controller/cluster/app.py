"""atwill's own cluster API, mounted at /cluster (OpenAPI at /cluster/v1/openapi.json)."""

from fastapi import FastAPI

from ..context import Controller
from ..fencing import routes as fencing
from ..peers import routes as peers
from ..service import make_service_app
from . import (
    admin,
    agents,
    certificates,
    cold_migrations,
    consoles,
    drain_api,
    join,
    restart_notice,
    snapshots,
    usage_events,
    volume_uploads,
)
from .nodecert import cluster_error


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, render=cluster_error, openapi_url="/v1/openapi.json",
                           title="atwill cluster API", version="1")
    for module in (join, agents, certificates, consoles, snapshots, admin, fencing,
                   usage_events, peers, volume_uploads, cold_migrations, drain_api, restart_notice):
        app.include_router(module.router)
    return app
