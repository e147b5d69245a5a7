"""/metrics: the controller's API traffic and the cloud's state in Prometheus' text format.

Who may scrape (not the public: it names every node and counts every project's
instances): a cloud admin's X-Auth-Token, or a scraper's own credential sent as
`Authorization: Bearer …` and kept in STATE_DIR/metrics-token (Prometheus reads it
with `authorization: {credentials_file: …}`), so a scraper needs no Keystone user.

Traffic is counted as it passes; the cloud's state (nodes, instances, heartbeats)
is read from the database at each scrape, so every replica reports the same state.
A controller serving from several worker processes (`atwill serve --workers N`) runs
prometheus_client in its multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by serve
before the workers import it): each worker's counts go to its own files there and a
scrape of any worker sums them all; the build histogram is then computed from the
database at each scrape (since the controller started), as each worker observing the
builds it noticed would count one build once per worker.
"""

from __future__ import annotations

import datetime as dt
import hmac
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import ApiError, Unauthorized
from .context import Controller
from .db.base import utcnow
from .db.models import Instance, Node
from .metrics_inventory import Inventory
from .metrics_placements import PLACEMENTS
from .metrics_tokens import count_lookups
from .service import authorize, caller, keystone_error

SERVICES = frozenset({"identity", "compute", "image", "network", "cluster", "metrics"})
TOKEN_FILE = "metrics-token"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
UNMATCHED = "unmatched"
BUILD_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SINCE_ENV = "ATWILL_METRICS_SINCE"  # when `atwill serve` started its workers (ISO 8601)


def multiprocess_dir() -> str | None:
    """The directory the workers' counts share, when serving from several processes."""
    return os.environ.get(MULTIPROC_ENV) or None


BUILD_HELP = ("Time from a server's create to its guest running, for builds finished since "
              "this controller started.")


class Metrics:
    """One registry per controller app (tests build several apps in one process)."""

    def __init__(self, ctl: Controller) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        shared = multiprocess_dir()
        state = CloudState(ctl, self)
        self.registry.register(state)  # first: it feeds the build histogram
        inventory = Inventory(ctl)
        self.registry.register(inventory)
        if shared is None:
            self.registry.register(PLACEMENTS)
        self.requests = Counter("atwill_api_requests", "API requests answered, by service, "
                                "route (its path template), method and status code.",
                                ["service", "route", "method", "code"],
                                registry=self.registry)
        self.latency = Histogram("atwill_api_request_duration_seconds", "Time to answer an "
                                 "API request, by service and route.", ["service", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.builds = None if shared is not None else Histogram(
            "atwill_instance_build_duration_seconds", BUILD_HELP, buckets=BUILD_BUCKETS,
            registry=self.registry)
        self.tokens = count_lookups(ctl, self.registry, shared=shared is not None)
        # Transactions the database refused for a concurrent one (service.py's 409s).
        ctl.db_contention = Counter(  # type: ignore[attr-defined]
            "atwill_db_contention", "Transactions the database refused for a concurrent "
            "one (a 409 to the client), by kind: deadlock, serialization, locked.",
            ["kind"], registry=self.registry)
        # What a scrape answers: the counts of every worker (their files, this one's
        # included), not this worker's objects in self.registry.
        self.answer = self.registry
        if shared is not None:
            self.answer = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(self.answer, path=shared)
            for collector in (state, inventory):
                self.answer.register(collector)
        self.shared = shared

    def exposition(self) -> bytes:
        if self.shared is not None:
            forget_dead_workers(self.shared)
        return generate_latest(self.answer)


def forget_dead_workers(shared: str) -> None:
    """A replaced worker's live gauges (its cache entries) leave the sum; its counts stay,
    as they happened."""
    for name in os.listdir(shared):
        if not name.startswith("gauge_live"):
            continue
        pid = name.rsplit("_", 1)[-1].removesuffix(".db")
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            mark_process_dead(int(pid), shared)


def service_of(path: str) -> str:
    first = path.split("/", 2)[1] if path.startswith("/") else ""
    return first if first in SERVICES else "other"


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/compute/v2.1/servers/{server_id}`), so
    the label has one value per route, not per id; UNMATCHED when no route took it."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if not isinstance(template, str) or isinstance(route, Mount):
        return UNMATCHED
    # A mounted service's routes are relative to its mount, which root_path holds.
    mounted = scope.get("root_path", "")[len(scope.get("app_root_path", "")):]
    return mounted + template


class Instrumented:
    """ASGI middleware counting each request and timing it, by service and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status, counted = time.perf_counter(), 500, False

        def count() -> None:
            nonlocal counted
            if counted:
                return
            counted = True
            service, route = service_of(scope["path"]), route_of(scope)
            self.metrics.requests.labels(service, route, scope["method"], str(status)).inc()
            self.metrics.latency.labels(service, route).observe(time.perf_counter() - started)

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Counted before the last byte leaves: a client that has its answer
                # finds it in the next scrape.
                count()
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            count()


class CloudState(Collector):
    """Nodes by state, heartbeat age per node, instances by state and node."""

    def __init__(self, ctl: Controller, metrics: Metrics) -> None:
        self.ctl, self.metrics = ctl, metrics
        self.watermark = utcnow()  # builds finished before this process are not observed
        self.observed: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        now = utcnow()
        nodes = GaugeMetricFamily("atwill_nodes", "Compute nodes by state.", labels=["state"])
        age = GaugeMetricFamily("atwill_node_heartbeat_age_seconds", "Seconds since each "
                                "node's last heartbeat.", labels=["node"])
        instances = GaugeMetricFamily("atwill_instances", "Live instances by state and node.",
                                      labels=["state", "node"])
        counts = {"up": 0, "down": 0, "disabled": 0}
        with self.ctl.db.session() as session:
            for name, state, enabled, beat in session.execute(
                    select(Node.name, Node.state, Node.enabled, Node.last_heartbeat)):
                key = "disabled" if not enabled else state
                counts[key] = counts.get(key, 0) + 1
                if beat is not None:
                    age.add_metric([name], max((now - beat).total_seconds(), 0.0))
            for state, node, count in session.execute(
                    select(Instance.vm_state, Instance.node_name, func.count(Instance.id))
                    .where(Instance.deleted.is_(False))
                    .group_by(Instance.vm_state, Instance.node_name)):
                instances.add_metric([state, node or ""], count)
            builds = (self._observe_builds(session) if self.metrics.builds is not None
                      else build_family(session, shared_since()))
        for state, count in sorted(counts.items()):
            nodes.add_metric([state], count)
        yield from (nodes, age, instances)
        if builds is not None:
            yield builds

    def _observe_builds(self, session: Session) -> None:
        assert self.metrics.builds is not None
        rows = session.execute(
            select(Instance.id, Instance.created_at, Instance.launched_at)
            .where(Instance.launched_at >= self.watermark))
        newest = self.watermark
        for ident, created, launched in rows:
            if ident in self.observed:
                continue
            self.metrics.builds.observe(max((launched - created).total_seconds(), 0.0))
            self.observed.add(ident)
            newest = max(newest, launched)
        if newest > self.watermark:
            # Only the newest second's ids can show up again; forget the rest.
            self.watermark = newest
            self.observed = set(session.scalars(
                select(Instance.id).where(Instance.launched_at >= newest)))


def shared_since() -> dt.datetime:
    """When serve started the workers: every worker counts builds from the same moment."""
    try:
        return dt.datetime.fromisoformat(os.environ[SINCE_ENV])
    except (KeyError, ValueError):
        return utcnow()


def build_family(session: Session, since: dt.datetime) -> HistogramMetricFamily:
    """The build histogram of every build finished since `since`, from the database."""
    counts, total, seen = [0] * len(BUILD_BUCKETS), 0.0, 0
    for created, launched in session.execute(
            select(Instance.created_at, Instance.launched_at)
            .where(Instance.launched_at >= since)):
        took = max((launched - created).total_seconds(), 0.0)
        total, seen = total + took, seen + 1
        for index, bound in enumerate(BUILD_BUCKETS):
            if took <= bound:
                counts[index] += 1
    family = HistogramMetricFamily("atwill_instance_build_duration_seconds", BUILD_HELP)
    buckets = [(floatToGoString(bound), count) for bound, count in zip(BUILD_BUCKETS, counts,
                                                                        strict=True)]
    family.add_metric([], [*buckets, ("+Inf", seen)], total)
    return family


def install(root: FastAPI, ctl: Controller) -> None:
    """Count root's requests and serve /metrics on it."""
    metrics = Metrics(ctl)
    root.add_middleware(Instrumented, metrics=metrics)

    @root.get("/metrics", include_in_schema=False)
    def metrics_get(request: Request) -> Response:
        try:
            admit(request, ctl)
        except ApiError as err:
            return JSONResponse(keystone_error(err), status_code=err.status,
                                headers=err.headers)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def admit(request: Request, ctl: Controller) -> None:
    """The scraper's own bearer credential, or a cloud admin's token; else 401/403."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        secret = scrape_secret(ctl.settings.path(TOKEN_FILE))
        if secret and hmac.compare_digest(header[7:].strip().encode(), secret.encode()):
            return
        raise Unauthorized("The metrics credential is not valid.")
    authorize(caller(request), "controller:metrics:get")


def scrape_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
