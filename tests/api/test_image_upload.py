"""Uploads that fail leave no half image and no file: disconnects, size limit, crashes."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.cloud import Cloud, unique

OCTET = {"Content-Type": "application/octet-stream"}
LIMIT = 256 * 1024


@pytest.fixture(scope="module")
def small() -> Iterator[Cloud]:
    """A controller of its own (SQLite) with a small image size limit."""
    instance = Cloud()
    try:
        instance.init()
        config = instance.state_dir / "atwill.yaml"
        settings = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**settings, "image_size_limit": LIMIT}))
        instance.start()
        yield instance
    finally:
        instance.destroy()


def queued_image(cloud: Cloud) -> tuple[httpx.Client, str]:
    client = cloud.http(cloud.token())
    resp = client.post("/image/v2/images", json={
        "name": unique("up"), "disk_format": "raw", "container_format": "bare"})
    assert resp.status_code == 201, resp.text
    return client, resp.json()["id"]


def debris(cloud: Cloud) -> list[str]:
    root = cloud.state_dir / "images"
    return sorted(p.name for p in root.iterdir()) if root.is_dir() else []


def status(client: httpx.Client, image_id: str) -> str:
    return client.get(f"/image/v2/images/{image_id}").json()["status"]


def wait_status(client: httpx.Client, image_id: str, wanted: str) -> None:
    deadline = time.monotonic() + 15
    while status(client, image_id) != wanted:
        assert time.monotonic() < deadline, f"image never became {wanted}"
        time.sleep(0.1)


def partial_upload(cloud: Cloud, image_id: str, token: str, sent: int) -> socket.socket:
    """Start a PUT announcing more data than is sent; returns the open socket."""
    raw = socket.create_connection(("127.0.0.1", cloud.port))
    sock = ssl.create_default_context(cafile=cloud.cacert).wrap_socket(
        raw, server_hostname="127.0.0.1")
    head = (f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {sent * 4}\r\n\r\n")
    sock.sendall(head.encode() + os.urandom(sent))
    return sock


def test_disconnect_leaves_image_queued(small: Cloud) -> None:
    client, image_id = queued_image(small)
    sock = partial_upload(small, image_id, small.token(), 50_000)
    wait_status(client, image_id, "saving")
    sock.close()
    wait_status(client, image_id, "queued")
    assert debris(small) == [] or image_id not in debris(small)
    assert not [n for n in debris(small) if n.startswith(".upload-")]
    # The image can still receive its data afterwards.
    data = os.urandom(1000)
    assert client.put(f"/image/v2/images/{image_id}/file", content=data,
                      headers=OCTET).status_code == 204
    assert client.get(f"/image/v2/images/{image_id}/file").content == data
    client.close()


def test_size_limit(small: Cloud) -> None:
    client, image_id = queued_image(small)
    declared = client.put(f"/image/v2/images/{image_id}/file", content=os.urandom(LIMIT + 1),
                          headers=OCTET)
    assert declared.status_code == 413 and declared.json()["error"]["message"]

    def chunked() -> Iterator[bytes]:
        for _ in range(8):
            yield os.urandom(64 * 1024)

    try:
        streamed = client.put(f"/image/v2/images/{image_id}/file", content=chunked(),
                              headers=OCTET)
        assert streamed.status_code == 413
    except httpx.TransportError:
        pass  # the server may close the connection while the client still sends
    wait_status(client, image_id, "queued")
    assert image_id not in debris(small)
    assert not [n for n in debris(small) if n.startswith(".upload-")]
    client.close()


def test_controller_killed_mid_upload(small: Cloud) -> None:
    client, image_id = queued_image(small)
    sock = partial_upload(small, image_id, small.token(), 50_000)
    wait_status(client, image_id, "saving")
    assert any(n.startswith(".upload-") for n in debris(small))
    assert small.proc is not None
    os.killpg(small.proc.pid, signal.SIGKILL)
    small.proc.wait()
    sock.close()
    client.close()
    small.start()
    with small.http(small.token()) as fresh:
        assert status(fresh, image_id) == "queued"
    assert not [n for n in debris(small) if n.startswith(".upload-")]
