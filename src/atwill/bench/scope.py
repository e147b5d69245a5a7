"""`atwill bench scope`: what X-Scope costs, on two real controllers paired as peers.

CloudOne reaches CloudTwo only through a relay that holds each byte DELAY in each
direction (scope_wan.py); the client sits next to CloudOne. For each delay:

- latency: `image show` of CloudTwo's image scoped through CloudOne (X-Scope, a CloudOne
  member's token) against the same call made directly to CloudTwo through the same WAN
  (a CloudTwo member's token), medians over the same run, keep-alive clients;
- throughput: downloading CloudTwo's image through CloudOne (scoped, streamed from the
  peer) against downloading the same bytes from CloudOne's own image store.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ..devcloud import Cloud
from .scope_wan import DelayRelay, relay

SCOPE = {"X-Scope": json.dumps({"image": "CloudTwo"})}


def _member(cloud: Cloud, name: str, project: str) -> str:
    with cloud.http(cloud.token()) as client:
        client.post("/identity/v3/users", json={"user": {"name": name,
                                                         "password": "bench-pass"}})
    cloud.openstack("role", "add", "--user", name, "--project", project, "member")
    cloud.add_user(name, "bench-pass", project)
    return cloud.token(name)


def _image(cloud: Cloud, data: Path, public: bool) -> str:
    extra = ["--public"] if public else []
    return cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                           "--container-format", "bare", *extra, "bench-scope", "-f",
                           "json")["id"]


def _setup(one: Cloud, two: Cloud, image_mb: int, tmp: Path) -> dict[str, str]:
    made = json.loads(two.atwill("peer", "token", "create", "--name", "CloudOne",
                                 "--json").stdout)
    one.atwill("peer", "add", "CloudTwo", made["url"], "--ca-hash", made["ca_hash"],
               "--token", made["token"])
    two.openstack("project", "create", "fromone")
    two.atwill("peer", "map", "CloudOne", "--remote-project", "admin", "--local-project",
               "fromone", "--role", "member")
    data = tmp / "image.raw"
    with data.open("wb") as out:
        for _ in range(image_mb):
            out.write(os.urandom(1 << 20))
    ids = {"one_image": _image(one, data, False), "two_image": _image(two, data, True)}
    data.unlink()
    ids["one_token"] = _member(one, "bencher", "admin")
    ids["two_token"] = _member(two, "bencher", "fromone")
    return ids


def _median_ms(client: httpx.Client, path: str, rounds: int,
               headers: dict[str, str]) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        resp = client.get(path, headers=headers)
        times.append(time.perf_counter() - started)
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path}: {resp.status_code} {resp.text[:300]}")
    return statistics.median(times) * 1000


def _mb_per_s(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
    started, size = time.perf_counter(), 0
    with client.stream("GET", path, headers=headers) as resp:
        if resp.status_code != 200:
            raise RuntimeError(f"GET {path}: {resp.status_code}")
        for chunk in resp.iter_raw(1 << 20):
            size += len(chunk)
    return size / (1 << 20) / (time.perf_counter() - started)


def _measure(one: Cloud, two: Cloud, wan: DelayRelay, ids: dict[str, str],
             rounds: int) -> dict[str, float]:
    show = f"/image/v2/images/{ids['two_image']}"
    with one.http(ids["one_token"]) as near, two.http(ids["two_token"]) as far:
        far.base_url = httpx.URL(f"https://127.0.0.1:{wan.port}")
        for client, headers in ((near, SCOPE), (far, {})):  # connections, caches warm
            _median_ms(client, show, 3, headers)
        direct = _median_ms(far, show, rounds, {})
        scoped = _median_ms(near, show, rounds, SCOPE)
        local = max(_mb_per_s(near, f"/image/v2/images/{ids['one_image']}/file", {})
                    for _ in range(2))
        cross = max(_mb_per_s(near, f"{show}/file", SCOPE) for _ in range(2))
    return {"direct_ms": direct, "scoped_ms": scoped, "overhead_ms": scoped - direct,
            "latency_ratio": scoped / direct, "local_mb_s": local, "cross_mb_s": cross,
            "throughput_ratio": cross / local}


def _report(results: dict[str, Any]) -> None:
    print(f"bench scope: {results['image_mb']} MB image, {results['rounds']} rounds; WAN: "
          f"{results['wan']}")
    for delay, r in results["runs"].items():
        print(f"  WAN delay {delay} each way: image show scoped {r['scoped_ms']:.1f} ms / "
              f"direct to the peer {r['direct_ms']:.1f} ms = {r['latency_ratio']:.2f}x "
              f"(+{r['overhead_ms']:.1f} ms); image download cross-cloud "
              f"{r['cross_mb_s']:.1f} MB/s / local {r['local_mb_s']:.1f} MB/s = "
              f"{r['throughput_ratio'] * 100:.0f} %")


def main(rounds: int, image_mb: int, delays_ms: tuple[int, ...]) -> dict[str, Any]:
    one, two = Cloud(), Cloud()
    results: dict[str, Any] = {"rounds": rounds, "image_mb": image_mb, "runs": {},
                               "wan": "userspace relay, delay held in each direction "
                                      "(no sch_netem in this kernel)"}
    try:
        for cloud in (one, two):
            cloud.init()
            cloud.start()
        with tempfile.TemporaryDirectory() as tmp:
            ids = _setup(one, two, image_mb, Path(tmp))
        with relay(two.port) as wan:
            one.atwill("peer", "set", "CloudTwo", "--url", f"https://127.0.0.1:{wan.port}")
            for delay in delays_ms:
                wan.delay = delay / 1000
                results["runs"][f"{delay}ms"] = _measure(one, two, wan, ids, rounds)
    finally:
        for cloud in (one, two):
            cloud.destroy()
    _report(results)
    return results
