"""The metadata service's relay of guests' wait condition signals to the controller."""

from __future__ import annotations

import json
import subprocess
import sys
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


NO_IMPORTS = """
import json, sys
from pathlib import Path
from atwill.agent.net import metadata_signal

class Refuse:
    # The metadata service once it runs as its own user: the interpreter's library may
    # be unreadable, so nothing not imported yet can be.
    def find_spec(self, name, path=None, target=None):
        raise ImportError(f"cannot read {name}")

sys.meta_path.insert(0, Refuse())
directory = Path(sys.argv[1])
(directory / "controller.json").write_text(json.dumps({"url": "http://localhost:9"}))
print(*metadata_signal.forward(directory, sys.argv[2], "t", b"{}"))
"""


def test_a_relay_by_host_name_needs_no_import_after_start(tmp_path: Path) -> None:
    """Before: resolving the controller's name imported the idna codec, which the service
    could not read as its own user; the guest's connection was dropped unanswered."""
    proc = subprocess.run([sys.executable, "-c", NO_IMPORTS, str(tmp_path), PATH],
                          capture_output=True, text=True, timeout=30)
    # Refused by the closed port: the name was resolved and a connection tried.
    assert proc.stdout.startswith("502 ") and "refused" in proc.stdout, (
        proc.stdout + proc.stderr[-2000:])


@pytest.mark.parametrize(("header", "size"), [
    (None, 0), ("", 0), ("12", 12), (" 7 ", 7), (str(metadata_signal.MAX_BODY), 65536),
    ("-1", None), ("+5", None), ("1e3", None), ("abc", None),
    (str(metadata_signal.MAX_BODY + 1), None)])
def test_only_a_bounded_content_length_is_read(header: str | None, size: int | None) -> None:
    """Review finding: Content-Length -1 passed the size check and read(-1) read until the
    guest closed the connection."""
    assert metadata_signal.body_size(header) == size
