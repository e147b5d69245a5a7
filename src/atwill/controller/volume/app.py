"""The Block Storage v3 service (Cinder subset), mounted at /volume."""

from __future__ import annotations

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app
from . import (
    attachments,
    pools,
    quotas,
    services,
    snapshots,
    types,
    versions,
    volume_actions,
    volume_metadata,
    volumes,
    zones,
)
from .common import VolumeRequests, cinder_error

MODULES = (versions, types, volumes, volume_actions, volume_metadata, snapshots, quotas,
           zones, services, attachments, pools)


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, render=cinder_error)
    for module in MODULES:
        app.include_router(module.router)
    app.add_middleware(VolumeRequests)
    return app
