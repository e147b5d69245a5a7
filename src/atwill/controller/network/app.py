"""The network service (Neutron v2.0 subset), mounted at /network."""

from __future__ import annotations

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app
from . import (
    agents,
    extensions,
    floatingips,
    interfaces,
    networks,
    ports,
    quotas,
    routers,
    rules,
    security_groups,
    subnetpools,
    subnets,
    tags,
    versions,
)
from .common import neutron_error

MODULES = (versions, extensions, networks, subnetpools, subnets, ports, routers, interfaces,
           floatingips, security_groups, rules, quotas, agents, tags)


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, render=neutron_error)
    for module in MODULES:
        app.include_router(module.router)
    return app
