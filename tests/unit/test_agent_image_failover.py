"""An image download cut by a dying controller goes on from the next controller."""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig

DATA = b"guest image bytes" * 1000


class FakeResponse:
    def raise_for_status(self) -> None:
        pass

    def iter_bytes(self, size: int) -> Iterator[bytes]:
        yield DATA


def _manager(tmp_path: Path, urls: list[str]) -> instances.InstanceManager:
    return instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url=urls[0], controller_urls=urls, node_id="n",
        name="node1"))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs asked, in order; the first controller's connection breaks."""
    urls: list[str] = []

    @contextlib.contextmanager
    def stream(method: str, url: str, **_: object) -> Iterator[FakeResponse]:
        urls.append(url)
        if url.startswith("https://dead"):
            raise httpx.ReadError("connection reset by peer")
        yield FakeResponse()

    monkeypatch.setattr(instances.httpx, "stream", stream)
    monkeypatch.setattr(instances, "tls_context", lambda *_: None)
    return urls


def test_the_download_goes_on_from_the_next_controller(
        tmp_path: Path, asked: list[str]) -> None:
    manager = _manager(tmp_path, ["https://dead:8686", "https://alive:8686"])
    image = {"id": str(uuid.uuid4()), "checksum": hashlib.md5(DATA).hexdigest()}
    cached = manager._image(image)
    assert cached.read_bytes() == DATA
    assert [u.split("/")[2] for u in asked] == ["dead:8686", "alive:8686"]


def test_with_one_controller_the_error_is_the_build_error(
        tmp_path: Path, asked: list[str]) -> None:
    manager = _manager(tmp_path, ["https://dead:8686"])
    with pytest.raises(httpx.ReadError):
        manager._image({"id": str(uuid.uuid4())})
    assert len(asked) == 1
