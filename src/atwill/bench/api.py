"""The controller API benchmark: rates and ratios measured in one run on this machine.

It starts a throwaway controller (HTTPS, SQLite) once per worker count asked (1 and 2:
`atwill serve --workers N`), then measures token issue and validation rates (GETs with
wrk when it is installed, against the version document as the same-run baseline),
flavor list rate and the controller's resident memory (all its processes), and with
the first count only, image upload and download throughput against a plain file copy
of the same bytes (`--image-only`: that alone). Rates carry a `_wN` suffix;
`_wN_vs_w1` is N workers against one. `--keystone`: then a real Keystone from PyPI with
the last worker count (bench/keystone.py), measured back to back with the same load;
`*_vs_keystone_{nocache,cached}` is atwill's figure at that count over Keystone's, as
PyPI ships it (no cache) and with its in-process cache on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from ..devcloud import Cloud

CONCURRENCY = 8


RATES = ("token_issue_per_s", "version_doc_per_s", "token_validate_per_s",
         "flavor_list_per_s")


def rss_mb(pid: int) -> float:
    """Resident memory of pid and its children (the worker processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
    total = 0.0
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


async def _rate(cloud: Cloud, count: int, method: str, path: str,
                headers: dict[str, str], json: dict | None = None, expect: int = 200) -> float:
    """Requests per second over count requests from CONCURRENCY keep-alive connections."""
    context = ssl.create_default_context(cafile=cloud.cacert)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=cloud.url, verify=context, limits=limits,
                                 headers=headers, timeout=60) as client:
        queue = iter(range(count))

        async def worker() -> None:
            for _ in queue:
                resp = await client.request(method, path, json=json)
                if resp.status_code != expect:
                    raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text}")

        await client.request(method, path, json=json)  # warm up the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return count / (time.perf_counter() - started)


def _wrk_rate(cloud: Cloud, path: str, headers: dict[str, str], seconds: int = 5) -> float:
    """Requests per second from wrk (C, keep-alive, CONCURRENCY connections): a Python
    client saturates these two cores long before the controller does."""
    args = ["wrk", "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, cloud.url + path], capture_output=True, text=True,
                         timeout=seconds + 30, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"GET {path}: some answers were not 2xx:\n{out}")
    return float(next(line.split()[1] for line in out.splitlines()
                      if line.startswith("Requests/sec:")))


def _get_rate(cloud: Cloud, count: int, path: str, headers: dict[str, str]) -> float:
    if shutil.which("wrk"):
        return _wrk_rate(cloud, path, headers)
    return asyncio.run(_rate(cloud, count, "GET", path, headers))


def _copy_rate(src: Path, dst: Path) -> float:
    started = time.perf_counter()
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as handle:
        os.fsync(handle.fileno())
    return src.stat().st_size / (time.perf_counter() - started) / 1e6


def _new_image(client: httpx.Client) -> str:
    resp = client.post("/image/v2/images", json={
        "name": "bench", "disk_format": "raw", "container_format": "bare"})
    resp.raise_for_status()
    return str(resp.json()["id"])


def _image_rates(cloud: Cloud, token: str, path: Path) -> tuple[float, float]:
    """Upload and download MB/s through httpx (a Python client, as the SDK is)."""
    size = path.stat().st_size
    with cloud.http(token) as client:
        image = _new_image(client)
        started = time.perf_counter()
        with open(path, "rb") as handle:
            resp = client.put(f"/image/v2/images/{image}/file", content=handle,
                              headers={"Content-Type": "application/octet-stream"})
        resp.raise_for_status()
        upload = size / (time.perf_counter() - started) / 1e6
        started = time.perf_counter()
        received = 0
        with client.stream("GET", f"/image/v2/images/{image}/file") as stream:
            for chunk in stream.iter_bytes(1 << 20):
                received += len(chunk)
        download = received / (time.perf_counter() - started) / 1e6
        client.delete(f"/image/v2/images/{image}")
    if received != size:
        raise RuntimeError(f"downloaded {received} bytes of {size}")
    return upload, download


def _curl(cloud: Cloud, token: str, args: list[str]) -> tuple[float, float]:
    """(seconds, bytes) of one curl transfer, as curl itself measured them."""
    out = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", cloud.cacert, "-H", f"X-Auth-Token: {token}",
         "-o", "/dev/null", "-w", "%{time_total} %{size_upload} %{size_download}", *args],
        capture_output=True, text=True, timeout=600, check=True).stdout.split()
    return float(out[0]), max(float(out[1]), float(out[2]))


def _curl_image_rates(cloud: Cloud, token: str, path: Path) -> tuple[float, float]:
    """Upload and download MB/s through curl (C, like cp): what the controller can do
    when the client is not the bottleneck (a Python client's TLS and parsing are)."""
    size = path.stat().st_size
    with cloud.http(token) as client:
        image = _new_image(client)
        url = f"{cloud.url}/image/v2/images/{image}/file"
        try:
            seconds, sent = _curl(cloud, token, [
                "-X", "PUT", "-T", str(path), "-H", "Content-Type: application/octet-stream",
                url])
            upload = sent / seconds / 1e6
            seconds, received = _curl(cloud, token, [url])
            download = received / seconds / 1e6
        finally:
            client.delete(f"/image/v2/images/{image}")
    if received != size or sent != size:
        raise RuntimeError(f"curl moved {sent} and {received} bytes of {size}")
    return upload, download


def _api_rates(cloud: Cloud, rounds: int, token: str) -> dict[str, float]:
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": cloud.admin_password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    results = {"token_issue_per_s": asyncio.run(_rate(
        cloud, max(rounds // 10, 50), "POST", "/identity/v3/auth/tokens", {}, auth, 201))}
    # The baseline: the cheapest answer the controller gives (no token, no database).
    results["version_doc_per_s"] = _get_rate(cloud, rounds, "/identity/v3", {})
    results["token_validate_per_s"] = _get_rate(
        cloud, rounds, "/identity/v3/auth/tokens?nocatalog",
        {"X-Auth-Token": token, "X-Subject-Token": token})
    results["token_validate_ratio"] = (results["token_validate_per_s"]
                                       / results["version_doc_per_s"])
    results["flavor_list_per_s"] = _get_rate(
        cloud, rounds, "/compute/v2.1/flavors", {"X-Auth-Token": token})
    return results


def _image_figures(cloud: Cloud, token: str, image_mb: int) -> dict[str, float]:
    """Transfer rates against a plain copy (cp + fsync) of the same bytes in the same run:
    through httpx (`image_*_py_*`) and, when it is installed, through curl (`image_*`,
    the controller's own figures: as for wrk and GETs, a Python client is the bottleneck)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "image.bin"
        with open(src, "wb") as handle:
            for _ in range(image_mb):
                handle.write(os.urandom(1 << 20))
        copy = _copy_rate(src, Path(tmp) / "copy.bin")
        rates = {"_py": _image_rates(cloud, token, src)}
        if shutil.which("curl"):
            rates[""] = _curl_image_rates(cloud, token, src)
    results = {"plain_copy_mb_s": copy}
    for suffix, (upload, download) in rates.items():
        results.update({
            f"image_upload{suffix}_mb_s": upload, f"image_download{suffix}_mb_s": download,
            f"image_upload{suffix}_ratio": upload / copy,
            f"image_download{suffix}_ratio": download / copy})
    return results


def _one_controller(workers: int, rounds: int, image_mb: int,
                    api: bool = True) -> dict[str, float]:
    cloud = Cloud(workers=workers)
    try:
        cloud.init()
        # The per-address login limit (10/s) would answer most of the issue loop with
        # 429: what is measured here is the cost of a token, not the limit.
        cloud.configure(login_rate=0)
        cloud.start()
        time.sleep(1)
        results = {"rss_idle_mb": rss_mb(cloud.proc.pid)}
        token = cloud.token()
        if api:
            results.update(_api_rates(cloud, rounds, token))
        if image_mb:
            results.update(_image_figures(cloud, token, image_mb))
        results["rss_after_mb"] = rss_mb(cloud.proc.pid)
        return results
    finally:
        cloud.destroy()


def main(rounds: int = 2000, image_mb: int = 256,
         workers: tuple[int, ...] = (1, 2), image_only: bool = False,
         keystone: bool = False) -> dict[str, float]:
    """image_only: the image transfer figures alone, with the first worker count."""
    results: dict[str, float] = {}
    if image_only:
        workers = workers[:1]
    for index, count in enumerate(workers):
        measured = _one_controller(count, rounds, image_mb if index == 0 else 0,
                                   api=not image_only)
        results.update({f"{key}_w{count}": value for key, value in measured.items()})
    base = workers[0]
    for count in workers[1:]:
        for key in RATES:
            results[f"{key}_w{count}_vs_w{base}"] = (results[f"{key}_w{count}"]
                                                      / results[f"{key}_w{base}"])
    verdicts: list[str] = []
    if keystone and not image_only:
        from . import keystone as ks

        last = workers[-1]
        ours = {key: results[f"{key}_w{last}"] for key in ks.MEASURED}
        for variant, cache in ks.VARIANTS.items():
            label = f"keystone_{variant}"
            measured = ks.measure(last, rounds, cache)
            results.update({f"{label}_{key}_w{last}": value for key, value in measured.items()})
            ratio = ks.ratios(ours, measured, label)
            results.update({f"{key}_w{last}": value for key, value in ratio.items()})
            verdicts += ks.verdicts(ratio, label)
    for key, value in results.items():
        print(f"{key:50} {value:10.2f}")
    for line in verdicts:
        print(line)
    return results
