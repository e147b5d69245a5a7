"""The orchestration service (Heat's v1 API subset), mounted at /orchestration."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy import select
from starlette.types import ASGIApp

from ..context import Controller
from ..db.orchestration import Stack, StackResource
from ..service import make_service_app
from . import actions, stacks, store, templates, versions
from .common import heat_error
from .engine import Engine

log = logging.getLogger("atwill.orchestration")


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, render=heat_error)
    app.state.engine = Engine(ctl)
    for module in (versions, templates, actions, stacks):
        app.include_router(module.router)
    return app


def serve_through(app: FastAPI, services: ASGIApp) -> None:
    """The engine calls the cloud's APIs through the controller's own app, in-process."""
    app.state.engine.app = services


def housekeeping(ctl: Controller) -> None:
    """A stack an earlier process left in progress can never finish: say so (FAILED)."""
    with ctl.db.session() as session:
        stuck = list(session.scalars(select(Stack).where(Stack.status == "IN_PROGRESS")))
        for stack in stuck:
            reason = (f"Stack {stack.action} interrupted: the controller restarted while it "
                      "was in progress")
            stack.status, stack.status_reason = "FAILED", reason
            store.event(session, stack, stack.name, store.STACK_TYPE, stack.id, stack.action,
                        "FAILED", reason)
            log.warning("stack %s (%s) was %s_IN_PROGRESS at start; marked FAILED",
                        stack.name, stack.id, stack.action)
        for row in session.scalars(select(StackResource).where(
                StackResource.status == "IN_PROGRESS")):
            row.status, row.status_reason = "FAILED", "The controller restarted mid-action"
