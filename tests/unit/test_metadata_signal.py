"""The metadata service's relay of guests' wait condition signals to the controller."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.net import metadata_signal

PATH = "/orchestration/v1/p1/stacks/web/0b1c/resources/handle/signal"


@pytest.fixture
def controller() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in controller: records each POST, answers 200 or (bad token) 401."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"path": self.path, "token": self.headers["X-Auth-Token"],
                         "type": self.headers["Content-Type"], "body": json.loads(body)})
            status = 200 if self.headers["X-Auth-Token"] == "good" else 401
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", seen
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _configure(directory: Path, url: str) -> None:
    for name, text in metadata_signal.controller_files(url, None).items():
        (directory / name).write_text(text)


@pytest.mark.parametrize(("path", "ok"), [
    (PATH, True), (PATH + "?x=1", True),
    ("/orchestration/v1/p1/stacks/web/0b1c/resources/handle", False),
    ("/orchestration/v1/p1/stacks/web/0b1c/actions", False),
    ("/identity/v3/auth/tokens", False),
    ("/orchestration/v1/p1/stacks/web/0b1c/resources/a/b/signal", False),
    ("/openstack/latest/meta_data.json", False)])
def test_only_signal_paths_are_relayed(path: str, ok: bool) -> None:
    assert metadata_signal.is_signal(path) is ok


def test_a_signal_reaches_the_controller_with_its_token_and_its_answer_comes_back(
        tmp_path: Path, controller: tuple[str, list[dict[str, Any]]]) -> None:
    url, seen = controller
    _configure(tmp_path, url)
    body = json.dumps({"status": "SUCCESS", "data": "vm1"}).encode()
    assert metadata_signal.forward(tmp_path, PATH, "good", body) == (200, b"{}")
    assert seen == [{"path": PATH, "token": "good", "type": "application/json",
                     "body": {"status": "SUCCESS", "data": "vm1"}}]
    status, _ = metadata_signal.forward(tmp_path, PATH + "?x=1", "bad", b"")
    assert status == 401 and seen[-1]["path"] == PATH and seen[-1]["body"] == {}


def test_without_a_controller_or_an_answer_the_guest_is_told_502(tmp_path: Path) -> None:
    status, body = metadata_signal.forward(tmp_path, PATH, "good", b"{}")
    assert status == 502 and b"knows no controller" in body
    assert metadata_signal.controller_files(None, None) == {}
    _configure(tmp_path, "http://127.0.0.1:9")
    status, body = metadata_signal.forward(tmp_path, PATH, "good", b"{}")
    assert status == 502 and b"did not answer" in body
