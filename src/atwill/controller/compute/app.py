"""The compute service (Nova v2.1 subset), mounted at /compute."""

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app
from . import (
    aggregates,
    availability_zones,
    extensions,
    extra_specs,
    flavor_access,
    flavors,
    hosts,
    hypervisors,
    instance_actions,
    keypairs,
    limits,
    quotas,
    server_actions,
    server_extras,
    server_groups,
    server_migrations,
    server_security_groups,
    server_tags,
    server_volumes,
    servers,
    services,
    simple_tenant_usage,
    versions,
)
from .common import Microversions, nova_error

MODULES = (versions, extensions, flavors, flavor_access, extra_specs, keypairs, quotas, limits,
           availability_zones, services, hypervisors, hosts, aggregates, servers, server_actions,
           server_extras, server_groups, server_security_groups, server_tags,
           server_volumes, instance_actions, simple_tenant_usage, server_migrations)


def create(ctl: Controller) -> FastAPI:
    app = make_service_app(ctl, render=nova_error)
    for module in MODULES:
        app.include_router(module.router)
    app.add_middleware(Microversions)
    return app
