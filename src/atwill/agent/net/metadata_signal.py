"""Wait condition signals from guests, relayed by the metadata service to the controller.

A guest reaches 169.254.169.254 on its own node, but not the controller's API: that
listens on the nodes' network (and its certificate is signed by the cluster's own CA),
which tenant routers never route to. A POST from a known port to an orchestration
signal path (`/orchestration/v1/{project}/stacks/{name}/{id}/resources/{handle}/signal`)
is passed on as it came, with the handle's token, to the controller the agent uses; the
controller checks the token, so the relay adds no authority of its own.
"""

from __future__ import annotations

# The service imports what a relay needs before it drops root: as its own user it may
# not read the interpreter's library (a pyenv under /root), and resolving a host name
# imports the idna codec on first use ("LookupError: unknown encoding: idna" in the lab).
import encodings.idna  # noqa: F401
import json
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path

SIGNAL = re.compile(r"^/orchestration/v1/[^/?]+/stacks/[^/?]+/[^/?]+/resources/[^/?]+/signal$")
CONTROLLER_FILE, CA_FILE = "controller.json", "controller-ca.pem"
MAX_BODY = 64 * 1024


def body_size(header: str | None) -> int | None:
    """The Content-Length a guest sent, if it is one we read: None for a negative, a
    non-numeric or a too large one (read(-1) would read until the guest closed the
    connection, into the node's one metadata process: a review finding)."""
    text = (header or "0").strip()
    if not text.isdigit():
        return None
    size = int(text)
    return size if size <= MAX_BODY else None


def is_signal(path: str) -> bool:
    return SIGNAL.match(path.split("?", 1)[0]) is not None


def controller_files(url: str | None, ca: Path | None) -> dict[str, str]:
    """The files the metadata directory holds for the relay (none without a controller)."""
    if not url:
        return {}
    files = {CONTROLLER_FILE: json.dumps({"url": url.rstrip("/")})}
    if ca is not None and ca.is_file():
        files[CA_FILE] = ca.read_text()
    return files


def forward(directory: Path, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    """POST the signal to the controller: its status and body (502 if it cannot be asked)."""
    try:
        url = json.loads((directory / CONTROLLER_FILE).read_text())["url"]
    except (OSError, ValueError, KeyError):
        return 502, b'{"error": "this node knows no controller to signal"}'
    ca = directory / CA_FILE
    context = ssl.create_default_context(cafile=str(ca)) if ca.is_file() else None
    request = urllib.request.Request(
        url + path.split("?", 1)[0], data=body or b"{}", method="POST",
        headers={"X-Auth-Token": token, "Content-Type": "application/json",
                 "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as resp:  # noqa: S310
            return resp.status, resp.read(MAX_BODY)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(MAX_BODY)
    except Exception as err:  # noqa: BLE001 - the guest is told, whatever went wrong
        return 502, json.dumps({"error": f"the controller did not answer: {err}"}).encode()
