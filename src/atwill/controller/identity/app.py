"""The identity service (Keystone v3 subset), mounted at /identity."""

from fastapi import FastAPI

from ...core.ratelimit import Slots, TokenBuckets
from ..context import Controller
from ..service import make_service_app
from . import assignments, auth, catalog, domains, projects, roles, system, users, versions


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl)
    # Per process: each controller process throttles the logins it serves.
    app.state.login_limiter = TokenBuckets(ctl.settings.login_rate, ctl.settings.login_burst)
    app.state.password_slots = Slots(ctl.settings.password_checks)
    for module in (versions, auth, domains, projects, users, roles, assignments, catalog,
                   system):
        app.include_router(module.router)
    return app
