"""The image service (Glance v2 subset), mounted at /image."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from ..context import Controller
from ..service import make_service_app
from . import data, images, info, listing, members, schemas, store, tags, versions
from .common import image_error

log = logging.getLogger("atwill.image")


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, image_error)
    for module in (versions, schemas, info, listing, images, data, tags, members):
        app.include_router(module.router)
    return app


def housekeeping(ctl: Controller) -> None:
    """Recover from uploads cut short by a previous controller process.

    The app is built once per controller start, before it serves, which is the
    moment when no upload can genuinely be in flight.
    """
    try:
        store.recover(ctl)
    except SQLAlchemyError:
        # An uninitialised database (e.g. an app built only to be inspected) has
        # nothing to recover; the controller itself always starts migrated.
        log.warning("image store housekeeping skipped: the database is not ready",
                    exc_info=True)
