"""atwill's own cluster API, mounted at /cluster (OpenAPI at /cluster/v1/openapi.json)."""

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app
from . import admin, agents, join, snapshots


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, openapi_url="/v1/openapi.json", title="atwill cluster API",
                           version="1")
    for module in (join, agents, snapshots, admin):
        app.include_router(module.router)
    return app
