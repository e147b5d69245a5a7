"""The node's image cache: fetched once, verified before use, collected when unused."""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from atwill.agent.hypervisor import disks

DATA = b"not really a disk image\n" * 1000
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()
SHA512 = hashlib.sha512(DATA).hexdigest()


class Fetcher:
    """A fake fetch that writes DATA (or other bytes) and counts its calls."""

    def __init__(self, data: bytes = DATA, delay: float = 0.0) -> None:
        self.data = data
        self.delay = delay
        self.calls = 0

    def __call__(self, dest: Path) -> None:
        self.calls += 1
        time.sleep(self.delay)
        dest.write_bytes(self.data)


def test_fetched_once_and_shared(tmp_path: Path) -> None:
    fetch = Fetcher()
    first = disks.ensure_cached(tmp_path, "img-1", MD5, fetch, sha512=SHA512)
    second = disks.ensure_cached(tmp_path, "img-1", MD5, fetch)
    assert first == second == tmp_path / "img-1"
    assert first.read_bytes() == DATA
    assert fetch.calls == 1


def test_concurrent_builds_fetch_once(tmp_path: Path) -> None:
    fetch = Fetcher(delay=0.2)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(
        disks.ensure_cached(tmp_path, "img-1", MD5, fetch))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == [tmp_path / "img-1"] * 4
    assert fetch.calls == 1


@pytest.mark.parametrize(("md5", "sha512"), [("0" * 32, None), (MD5, "0" * 128)])
def test_checksum_mismatch_caches_nothing(tmp_path: Path, md5: str, sha512: str | None) -> None:
    with pytest.raises(disks.ChecksumError):
        disks.ensure_cached(tmp_path, "img-1", md5, Fetcher(), sha512=sha512)
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]
    # A later attempt with the right data succeeds.
    assert disks.ensure_cached(tmp_path, "img-1", MD5, Fetcher()).read_bytes() == DATA


def test_failed_fetch_leaves_no_partial_file(tmp_path: Path) -> None:
    def broken(dest: Path) -> None:
        dest.write_bytes(b"half")
        raise OSError("connection reset")

    with pytest.raises(OSError, match="reset"):
        disks.ensure_cached(tmp_path, "img-1", MD5, broken)
    assert [p.name for p in tmp_path.iterdir()] == [".locks"]


@pytest.mark.parametrize("bad", ["../etc", ".hidden", "a/b", ""])
def test_image_ids_cannot_escape_the_cache(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        disks.ensure_cached(tmp_path, bad, MD5, Fetcher())


def test_gc_removes_only_unused_images(tmp_path: Path) -> None:
    for image in ("a", "b", "c"):
        disks.ensure_cached(tmp_path, image, MD5, Fetcher())
    assert disks.gc(tmp_path, in_use={"b"}) == ["a", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "b"]
    assert disks.gc(tmp_path / "nowhere", set()) == []


def test_gc_skips_an_image_being_fetched(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(dest: Path) -> None:
        started.set()
        release.wait(5)
        dest.write_bytes(DATA)

    thread = threading.Thread(target=disks.ensure_cached, args=(tmp_path, "busy", MD5, slow))
    thread.start()
    assert started.wait(5)
    # A file under the name whose lock another build holds: gc must leave it alone.
    (tmp_path / "busy").write_bytes(DATA)
    assert disks.gc(tmp_path, set()) == []
    release.set()
    thread.join(5)


def test_http_fetch_streams_with_token(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=DATA)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fetch = disks.image_fetcher("http://ctl/image/", "img-1", token="tok", client=client)
    path = disks.ensure_cached(tmp_path, "img-1", MD5, fetch)
    assert path.read_bytes() == DATA
    assert str(seen[0].url) == "http://ctl/image/v2/images/img-1/file"
    assert seen[0].headers["X-Auth-Token"] == "tok"


def test_http_fetch_error_caches_nothing(tmp_path: Path) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    with pytest.raises(httpx.HTTPStatusError):
        disks.ensure_cached(tmp_path, "img-1", MD5,
                            disks.image_fetcher("http://ctl/image", "img-1", client=client))
    assert not (tmp_path / "img-1").exists()


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
def test_overlay_on_a_cached_base(tmp_path: Path) -> None:
    base = tmp_path / "base"
    disks.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "1G"])
    disks.create_overlay(base, tmp_path / "big.qcow2", 3)
    disks.create_overlay(base, tmp_path / "small.qcow2", 0)
    assert disks.virtual_size(tmp_path / "big.qcow2") == 3 << 30
    # A flavor disk smaller than the image gets the image's size, as in Nova.
    assert disks.virtual_size(tmp_path / "small.qcow2") == 1 << 30
