"""The identity service (Keystone v3 subset), mounted at /identity."""

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app
from . import assignments, auth, catalog, domains, projects, roles, users, versions


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl)
    for module in (versions, auth, domains, projects, users, roles, assignments, catalog):
        app.include_router(module.router)
    return app
