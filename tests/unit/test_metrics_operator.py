"""Operator metrics: reconcile passes (agent → heartbeat → histogram), token cache lookups,
and API requests labelled by their route template."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from atwill.agent import daemon
from atwill.agent.config import AgentConfig
from atwill.controller.identity import token_cache
from atwill.controller.identity.token_cache import TokenCache
from atwill.controller.metrics import UNMATCHED, Instrumented
from atwill.controller.metrics_reconcile import reconcile_families
from atwill.controller.metrics_tokens import count_lookups
from atwill.core.reconcile_timing import BUCKETS, REPORT_KEY, ReconcileTimes, read_report


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Families(Collector):
    def __init__(self, families: Any) -> None:
        self.families = list(families)

    def collect(self) -> Any:
        return iter(self.families)


def test_passes_are_counted_cumulatively() -> None:
    times = ReconcileTimes()
    times.observe(0.003, failed=False)
    times.observe(0.7, failed=True)
    times.observe(4000.0, failed=False)  # past every bucket: +Inf only
    report = times.report()
    assert report["count"] == 3 and report["failures"] == 1
    assert report["sum"] == pytest.approx(4000.703)
    assert report["buckets"][0] == 1  # le 0.01
    assert report["buckets"][BUCKETS.index(1.0)] == 2
    assert report["buckets"][-1] == 2
    assert read_report(report) == report


@pytest.mark.parametrize("bad", [
    None, "x", {},
    {"buckets": [1] * (len(BUCKETS) - 1), "sum": 1, "count": 1, "failures": 0},
    {"buckets": [2, *[1] * (len(BUCKETS) - 1)], "sum": 1, "count": 2, "failures": 0},
    {"buckets": [1] * len(BUCKETS), "sum": 1, "count": 0, "failures": 0},
    {"buckets": [0] * len(BUCKETS), "sum": -1, "count": 0, "failures": 0},
    {"buckets": [0] * len(BUCKETS), "sum": 1, "count": 1, "failures": 2},
    {"buckets": [True] * len(BUCKETS), "sum": 1, "count": 1, "failures": 0},
    {"buckets": [0] * len(BUCKETS), "sum": float("nan"), "count": 1, "failures": 0},
])
def test_a_malformed_report_is_skipped(bad: object) -> None:
    assert read_report(bad) is None


def test_reconcile_histogram_per_node() -> None:
    times = ReconcileTimes()
    for seconds, failed in ((0.02, False), (0.3, False), (12.0, True)):
        times.observe(seconds, failed)
    nodes = [SimpleNamespace(name="n1", host_status={REPORT_KEY: times.report()}),
             SimpleNamespace(name="old", host_status={"uptime_s": 5}),
             SimpleNamespace(name="liar", host_status={REPORT_KEY: {"buckets": [9]}})]
    registry = CollectorRegistry()
    registry.register(Families(reconcile_families(nodes)))  # type: ignore[arg-type]
    found = samples(registry)
    name = "atwill_node_reconcile_duration_seconds"
    assert found[(f"{name}_bucket", frozenset({("node", "n1"), ("le", "0.05")}))] == 1
    assert found[(f"{name}_bucket", frozenset({("node", "n1"), ("le", "10.0")}))] == 2
    assert found[(f"{name}_bucket", frozenset({("node", "n1"), ("le", "+Inf")}))] == 3
    assert found[(f"{name}_count", frozenset({("node", "n1")}))] == 3
    assert found[(f"{name}_sum", frozenset({("node", "n1")}))] == pytest.approx(12.32)
    assert found[("atwill_node_reconcile_failures_total", frozenset({("node", "n1")}))] == 1
    assert not any(dict(labels).get("node") in ("old", "liar") for _, labels in found)


def test_the_agent_times_every_apply_and_counts_failures(tmp_path: Path) -> None:
    cfg = AgentConfig(state_dir=tmp_path / "state", controller_url="https://c:1",
                      node_id="n1", name="timed1")
    cfg.save()
    agent = daemon.Agent(cfg)
    agent.overlay.apply = lambda desired, verify=False: None  # type: ignore[method-assign]
    agent.instances.taps = lambda wanted: None  # type: ignore[method-assign]
    agent.instances.converge = lambda wanted, destroy=(): None  # type: ignore[method-assign]
    agent.network.apply = lambda desired: None  # type: ignore[method-assign]
    agent.apply({"revision": 1, "instances": []})

    def broken(desired: dict[str, Any]) -> None:
        raise RuntimeError("nft refused")

    agent.network.apply = broken  # type: ignore[method-assign]
    agent.apply({"revision": 2, "instances": []}, quiet=True)
    report = agent.reconciles.report()
    assert report["count"] == 2 and report["failures"] == 1
    assert read_report(report) == report


def test_token_cache_lookups_and_size() -> None:
    registry = CollectorRegistry()
    ctl = SimpleNamespace(tokens=TokenCache())
    counted = count_lookups(ctl, registry)
    assert ctl.tokens is counted
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    assert ctl.tokens.get("t1") is None
    ctl.tokens.put("t1", "who", later, token_cache.generation())
    assert ctl.tokens.get("t1") == "who" and ctl.tokens.get("t1") == "who"
    found = samples(registry)
    assert found[("atwill_token_cache_lookups_total", frozenset({("result", "hit")}))] == 2
    assert found[("atwill_token_cache_lookups_total", frozenset({("result", "miss")}))] == 1
    assert found[("atwill_token_cache_entries", frozenset())] == 1
    ctl.tokens.clear()
    assert samples(registry)[("atwill_token_cache_entries", frozenset())] == 0
    again = CollectorRegistry()
    count_lookups(ctl, again)  # a second app on the same controller wraps the cache once
    assert ctl.tokens.cache is counted.cache


def test_requests_are_labelled_by_route_template() -> None:
    registry = CollectorRegistry()
    metrics = SimpleNamespace(
        requests=Counter("r", "r", ["service", "route", "method", "code"], registry=registry),
        latency=Histogram("l", "l", ["service", "route"], registry=registry))
    sub = FastAPI()

    @sub.get("/v2.1/servers/{server_id}")
    def server(server_id: str) -> dict:
        return {"id": server_id}

    root = FastAPI()
    root.mount("/compute", sub)
    root.add_middleware(Instrumented, metrics=metrics)

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=root)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(path)).status_code for path in (
                "/compute/v2.1/servers/abc", "/compute/v2.1/servers/def",
                "/compute/v2.1/nothing/here", "/elsewhere")]

    assert asyncio.run(calls()) == [200, 200, 404, 404]
    found = samples(registry)
    route = "/compute/v2.1/servers/{server_id}"
    assert found[("r_total", frozenset({("service", "compute"), ("route", route),
                                        ("method", "GET"), ("code", "200")}))] == 2
    assert found[("r_total", frozenset({("service", "compute"), ("route", UNMATCHED),
                                        ("method", "GET"), ("code", "404")}))] == 1
    assert found[("r_total", frozenset({("service", "other"), ("route", UNMATCHED),
                                        ("method", "GET"), ("code", "404")}))] == 1
    assert found[("l_count", frozenset({("service", "compute"), ("route", route)}))] == 2


def test_a_request_is_counted_before_its_last_byte_is_sent() -> None:
    """A client that has its answer finds it in the next scrape (the count used to follow
    the response, and a scrape right after it missed the last request: CI, session 8)."""
    registry = CollectorRegistry()
    metrics = SimpleNamespace(
        requests=Counter("r", "r", ["service", "route", "method", "code"], registry=registry),
        latency=Histogram("l", "l", ["service", "route"], registry=registry))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    seen: list[float] = []

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            key = ("r_total", frozenset({("service", "other"), ("route", UNMATCHED),
                                         ("method", "GET"), ("code", "200")}))
            seen.append(samples(registry).get(key, 0.0))

    scope = {"type": "http", "path": "/x", "method": "GET"}
    asyncio.run(Instrumented(app, metrics)(scope, None, send))
    assert seen == [0.0, 1.0]
    assert samples(registry)[("l_count", frozenset({("service", "other"),
                                                    ("route", UNMATCHED)}))] == 1
