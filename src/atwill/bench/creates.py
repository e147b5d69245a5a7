"""Creates: sustained server creates through the compute API against SIMULATED nodes.

A real controller (`atwill serve`, SQLite by default, a fresh PostgreSQL database with
--database-url) and N SIMULATED nodes joined as bench fleet joins them (fleet.join: a
real join token, each its own key and certificate, the cluster API over mutual TLS). No
agent and no QEMU: each simulated node holds its long-poll on
`GET /cluster/v1/nodes/{id}/desired`, and heartbeats once a second and at once when its
desired state changes, reporting every instance the desired state lists as running. A
server is ACTIVE only through that path: the node's report.

The client creates servers as openstacksdk does (`POST /compute/v2.1/servers` with a
token: a flavor, an image, a network with a subnet, so each create makes a port) over
`--connections` concurrent connections, `--creates` in all or until `--seconds`. It
records each POST's latency and server id; a watcher reads the instances' vm_state from
the database every 0.2 s (not through the API, so as not to load it: the ACTIVE times
are within 0.2 s) for create -> ACTIVE. Figures: accepted creates/s (202s), ACTIVE/s
over the run and in its steady middle (creates_figures.sustained), p50/p99 POST and
create -> ACTIVE, errors (non-202s and servers not ACTIVE by the end; must be 0), and
nodes overbooked (scheduler._overbooked; must be 0). Baseline in the same run: the same
client, same connections, `GET /compute/v2.1/flavors` for a few seconds; the ratio
creates/s ÷ flavor lists/s says what a create costs against the cheapest authenticated
compute call.

Figures: see benchmarks/README.md ("Creates through the API").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from ..devcloud import Cloud, fresh_database
from .creates_figures import figures
from .fleet import SimNode, cpu_seconds, group_pids, joined_cloud, own_cpu
from .fleet_beats import INVENTORY

COMPUTE = "/compute/v2.1"
STOPPED = {"off", "stopped", "shutoff"}


class Simulated:
    """One SIMULATED node's agent: long-poll, report what the desired state runs."""

    def __init__(self, node: SimNode, url: str) -> None:
        self.node = node
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.polls = httpx.AsyncClient(base_url=url, verify=node.tls, limits=limits)
        self.beats = httpx.AsyncClient(base_url=url, verify=node.tls, limits=limits)
        self.report: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Event()
        self.began = time.monotonic()
        self.first = True
        self.beat_errors = 0
        self.wakes = 0  # long-polls answered with a new revision

    def _apply(self, desired: dict[str, Any]) -> None:
        report = {}
        for inst in desired.get("instances", []):
            state = "shutoff" if inst.get("power") in STOPPED else "running"
            report[inst["id"]] = {"state": state,
                                  "reboot_serial": inst.get("reboot_serial", 0),
                                  "rebuild_serial": inst.get("rebuild_serial", 0)}
        if report != self.report:
            self.report = report
            self.changed.set()

    async def poll(self) -> None:
        after = -1
        while True:
            try:
                resp = await self.polls.get(f"/cluster/v1/nodes/{self.node.id}/desired",
                                            params={"after": after, "wait": 25}, timeout=40)
                resp.raise_for_status()
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            desired = resp.json()
            if after >= 0 and desired.get("revision", after) != after:
                self.wakes += 1
            after = desired.get("revision", after)
            self._apply(desired)

    async def beat(self) -> None:
        while True:
            body: dict[str, Any] = {
                "overlay": {}, "instances": self.report,
                "running_vms": sum(1 for r in self.report.values()
                                   if r["state"] == "running"),
                "host": {"uptime_s": round(time.monotonic() - self.began)}}
            if self.first:
                body["inventory"] = INVENTORY
            self.changed.clear()
            try:
                resp = await self.beats.post(f"/cluster/v1/nodes/{self.node.id}/heartbeat",
                                             json=body, timeout=30)
                if resp.status_code == 200:
                    self.first = False
                else:
                    self.beat_errors += 1
            except httpx.HTTPError:
                self.beat_errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)

    async def close(self) -> None:
        await self.polls.aclose()
        await self.beats.aclose()


async def ok(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code >= 300:
        raise RuntimeError(f"{resp.request.method} {resp.request.url.path}: "
                           f"{resp.status_code} {resp.text[:300]}")
    return resp.json() if resp.content else {}


async def unlimited(admin: httpx.AsyncClient, project: str) -> None:
    await ok(await admin.put(f"{COMPUTE}/os-quota-sets/{project}", json={"quota_set": {
        "instances": -1, "cores": -1, "ram": -1}}))
    with contextlib.suppress(RuntimeError):  # where the network quotas exist
        await ok(await admin.put(f"/network/v2.0/quotas/{project}", json={"quota": {
            "port": -1}}))


async def tokens(cloud: Cloud, admin: httpx.AsyncClient, count: int) -> list[str]:
    """The admin's token, and count - 1 more, each scoped to a new project of its own
    (the admin user given the member role there), quotas lifted: tenants creating at once."""
    out = [admin.headers["X-Auth-Token"]]
    if count < 2:
        return out
    me = (await ok(await admin.get("/identity/v3/auth/tokens", headers={
        "X-Subject-Token": out[0]})))["token"]["user"]["id"]
    role = (await ok(await admin.get("/identity/v3/roles", params={
        "name": "member"})))["roles"][0]["id"]
    for index in range(1, count):
        project = (await ok(await admin.post("/identity/v3/projects", json={"project": {
            "name": f"bench-creates-{index}-{uuid.uuid4().hex[:6]}",
            "domain_id": "default"}})))["project"]["id"]
        await ok(await admin.put(f"/identity/v3/projects/{project}/users/{me}/roles/{role}"))
        await unlimited(admin, project)
        resp = await admin.post("/identity/v3/auth/tokens", json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"},
                "password": cloud.admin_password}}},
            "scope": {"project": {"id": project}}}})
        await ok(resp)
        out.append(resp.headers["X-Subject-Token"])
    return out


async def setup(admin: httpx.AsyncClient, creates: int) -> dict[str, str]:
    """A flavor, a tiny image, a shared network with a /16 subnet; quotas lifted."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    flavor = (await ok(await admin.post(f"{COMPUTE}/flavors", json={"flavor": {
        "name": name, "ram": 256, "vcpus": 1, "disk": 1}})))["flavor"]["id"]
    image = (await ok(await admin.post("/image/v2/images", json={
        "name": name, "disk_format": "raw", "container_format": "bare",
        "visibility": "public"})))["id"]
    await ok(await admin.put(f"/image/v2/images/{image}/file", content=b"\0" * 65536,
                             headers={"Content-Type": "application/octet-stream"}))
    net = (await ok(await admin.post("/network/v2.0/networks", json={"network": {
        "name": name, "shared": True}})))["network"]["id"]
    await ok(await admin.post("/network/v2.0/subnets", json={"subnet": {
        "network_id": net, "ip_version": 4, "cidr": "10.64.0.0/16", "name": name}}))
    project = (await ok(await admin.get("/identity/v3/auth/tokens", headers={
        "X-Subject-Token": admin.headers["X-Auth-Token"]})))["token"]["project"]["id"]
    await unlimited(admin, project)
    return {"flavor": flavor, "image": image, "network": net}


async def baseline(admin: httpx.AsyncClient, connections: int, seconds: float) -> float:
    """GET /compute/v2.1/flavors per second, same client and connections."""
    done, errors = 0, 0
    deadline = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done, errors
        while time.monotonic() < deadline:
            resp = await admin.get(f"{COMPUTE}/flavors")
            if resp.status_code == 200:
                done += 1
            else:
                errors += 1

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    if errors:
        raise RuntimeError(f"baseline: {errors} flavor lists failed")
    return round(done / (time.monotonic() - began), 1)


async def watch(db_url: str, active: dict[str, float], stop: asyncio.Event) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        while not stop.is_set():
            def read() -> list[str]:
                with engine.connect() as conn:
                    return [r[0] for r in conn.execute(text(
                        "SELECT id FROM instances WHERE vm_state = 'active'"))]
            now = time.monotonic()
            for ident in await asyncio.to_thread(read):
                active.setdefault(ident, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        engine.dispose()


async def create_load(admin: httpx.AsyncClient, ids: dict[str, str], creates: int,
                      seconds: float, connections: int, network: bool = True,
                      scoped: list[str] | None = None
                      ) -> tuple[float, list[tuple[float, float, str | None]], list[str]]:
    posts: list[tuple[float, float, str | None]] = []
    errors: list[str] = []
    counter = iter(range(creates))
    # Without a network: "none" (microversion 2.37), no port, no network fan-out.
    version = {} if network else {"OpenStack-API-Version": "compute 2.37"}
    began = time.monotonic()
    deadline = began + seconds

    scoped = scoped or [admin.headers["X-Auth-Token"]]

    async def one(lane: int) -> None:
        headers = {**version, "X-Auth-Token": scoped[lane % len(scoped)]}
        for index in counter:
            if time.monotonic() >= deadline:
                return
            body = {"server": {"name": f"bench-{index:05d}", "flavorRef": ids["flavor"],
                               "imageRef": ids["image"],
                               "networks": [{"uuid": ids["network"]}] if network
                               else "none"}}
            sent = time.monotonic()
            try:
                resp = await admin.post(f"{COMPUTE}/servers", json=body, headers=headers)
            except httpx.HTTPError as exc:
                posts.append((sent, time.monotonic(), None))
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            answered = time.monotonic()
            if resp.status_code == 202:
                posts.append((sent, answered, resp.json()["server"]["id"]))
            else:
                posts.append((sent, answered, None))
                errors.append(f"{resp.status_code} {resp.text[:200]}")

    await asyncio.gather(*(one(lane) for lane in range(connections)))
    return began, posts, errors


async def run(cloud: Cloud, nodes: list[SimNode], creates: int, seconds: float,
              connections: int, settle_s: float, network: bool = True,
              projects: int = 1) -> dict[str, Any]:
    sims = [Simulated(n, cloud.url) for n in nodes]
    tasks = [asyncio.create_task(s.poll()) for s in sims]
    tasks += [asyncio.create_task(s.beat()) for s in sims]
    ca = ssl.create_default_context(cafile=cloud.cacert)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    admin = httpx.AsyncClient(base_url=cloud.url, verify=ca, timeout=60, limits=limits,
                              headers={"X-Auth-Token": cloud.token()})
    stop = asyncio.Event()
    active: dict[str, float] = {}
    watcher: asyncio.Task | None = None
    try:
        ids = await setup(admin, creates)
        scoped = await tokens(cloud, admin, projects)
        await asyncio.sleep(3)  # every node's first beat (inventory) in: all up
        flavors_per_s = await baseline(admin, connections, 5.0)
        watcher = asyncio.create_task(watch(cloud.db_url(), active, stop))
        assert cloud.proc is not None
        pids = group_pids(cloud.proc.pid)
        ctl0, me0, wakes0 = cpu_seconds(pids), own_cpu(), sum(s.wakes for s in sims)
        began, posts, errors = await create_load(admin, ids, creates, seconds, connections,
                                                 network, scoped)
        wanted = {i for _, _, i in posts if i is not None}
        deadline = time.monotonic() + settle_s
        while not wanted <= set(active) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        ctl, me = cpu_seconds(pids) - ctl0, own_cpu() - me0
        results = figures(began, posts, active, errors)
        per = max(1, results["accepted"])
        # Until the last ACTIVE (or the settle limit): the nodes' beats and polls included.
        results["controller_cpu_ms_per_create"] = round(1000 * ctl / per, 2)
        results["generator_cpu_ms_per_create"] = round(1000 * me / per, 2)
        # How many nodes' desired states one create moved (ideally ~1: its own node's).
        results["long_poll_wakes_per_create"] = round(
            (sum(s.wakes for s in sims) - wakes0) / per, 2)
        results["flavor_lists_per_s"] = flavors_per_s
        if results["accepted_per_s"]:
            results["creates_per_flavor_list"] = round(
                results["accepted_per_s"] / flavors_per_s, 4)
        results["heartbeat_errors"] = sum(s.beat_errors for s in sims)
        results["first_errors"] = errors[:3]
        return results
    finally:
        stop.set()
        if watcher is not None:
            await asyncio.gather(watcher, return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for sim in sims:
            await sim.close()
        await admin.aclose()


def overbooked(db_url: str) -> int:
    from ..controller.db.session import Database
    from .scheduler import _overbooked

    db = Database(db_url)
    try:
        return _overbooked(db)
    finally:
        db.dispose()


def main(nodes: int = 50, creates: int = 1000, seconds: float = 60.0, connections: int = 8,
         workers: int = 1, database_url: str | None = None,
         settle_s: float = 60.0, network: bool = True, projects: int = 1
         ) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(fresh_database(database_url, "atwill_creates")) \
            if database_url else None
        cloud, sims, joined_s = stack.enter_context(joined_cloud(url, workers, nodes))
        engine = "PostgreSQL" if url else "SQLite"
        print(f"{nodes} SIMULATED nodes joined in {joined_s:.1f} s "
              f"(controller: {workers} worker(s), {engine}; client: {connections} "
              f"connections, up to {creates} creates in {seconds:.0f} s)", flush=True)
        results: dict[str, Any] = {"nodes": nodes, "workers": workers,
                                   "engine": engine, "connections": connections,
                                   "network": network, "projects": projects,
                                   "cpus": os.cpu_count(),
                                   "loadavg_1m": round(os.getloadavg()[0], 2)}
        results.update(asyncio.run(run(cloud, sims, creates, seconds, connections,
                                       settle_s, network, projects)))
        results["overbooked_nodes"] = overbooked(cloud.db_url())
        if results["errors"] or results["heartbeat_errors"]:  # the evidence kept
            kept = Path(tempfile.gettempdir()) / f"atwill-bench-creates-{os.getpid()}.log"
            kept.write_text(cloud.log())
            results["controller_log"] = str(kept)
    for key, value in results.items():
        print(f"{key:26} {json.dumps(value)}")
    return results
