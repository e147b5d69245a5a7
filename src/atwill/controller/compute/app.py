"""The compute service."""

from fastapi import FastAPI

from ..context import Controller
from ..service import make_service_app


def create(ctl: Controller) -> FastAPI:
    return make_service_app(ctl)
