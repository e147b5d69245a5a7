"""Command lines of the atwill and openstack programs the lab runs, and running them.

The node commands follow docs/cluster.md: a lab node joins exactly as a real
machine does, with a token from the controller host.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .netns import Namespace

BIN = Path(sys.executable).parent
ATWILL = str(BIN / "atwill")
OPENSTACK = str(BIN / "openstack")
PYTHON = sys.executable
CONTROLLER_PORT = 8686


class CommandError(RuntimeError):
    """A command run in a lab host failed; carries its output."""

    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess) -> None:
        detail = (proc.stderr or proc.stdout or "").strip()
        super().__init__(f"{' '.join(argv)} exited {proc.returncode}: {detail}")
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr


def run_in(ns: Namespace, argv: Sequence[str], check: bool = True, timeout: float = 60,
           env: Mapping[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command to completion inside a namespace, output captured as text."""
    full = ns.argv(argv)
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None, input=input)
    if check and proc.returncode != 0:
        raise CommandError(list(argv), proc)
    return proc


def openstack_env(clouds_yaml: Path) -> dict[str, str]:
    """The environment with no stray OS_* variables, pointing at the lab's clouds.yaml."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    return env


def wants_json(args: Sequence[str]) -> bool:
    args = list(args)
    return ("-f" in args and args.index("-f") + 1 < len(args)
            and args[args.index("-f") + 1] == "json") or "--json" in args


def parse(stdout: str) -> Any:
    return json.loads(stdout) if stdout.strip() else None


DATABASE_URL_ENV = "ATWILL_DATABASE_URL"  # its password stays off command lines (/proc)


def init(state_dir: str, host: str, overlay: str, public_host: str | None = None) -> list[str]:
    """`atwill init`; a database URL goes in the environment (DATABASE_URL_ENV)."""
    return [ATWILL, "init", "--state-dir", state_dir, "--host", host,
            "--port", str(CONTROLLER_PORT), "--overlay", overlay,
            *(["--public-host", public_host] if public_host else [])]


def export_bundle(state_dir: str, target: str, passphrase_file: str) -> list[str]:
    return [ATWILL, "controller", "export-bundle", target, "--state-dir", state_dir,
            "--passphrase-file", passphrase_file]


def add_controller(state_dir: str, bundle: str, passphrase_file: str, host: str) -> list[str]:
    """Another controller from a bundle, listening on and named by its own address."""
    return [ATWILL, "controller", "add", "--bundle", bundle, "--state-dir", state_dir,
            "--passphrase-file", passphrase_file, "--host", host, "--public-host", host,
            "--port", str(CONTROLLER_PORT)]


def serve(state_dir: str) -> list[str]:
    # One worker: the lab shares two cores among many hosts, and its tests are about
    # nodes and guests; several workers are tested by tests/api/test_controller_workers.py
    # and test_metrics_workers.py.
    return [ATWILL, "serve", "--state-dir", state_dir, "--workers", "1"]


def seed(state_dir: str) -> list[str]:
    """Seed a running controller with up's flavors and guest image (cloud_defaults.py)."""
    return [PYTHON, "-m", "atwill.cloud_defaults", state_dir]


def token_create(state_dir: str, ttl: str = "10m") -> list[str]:
    return [ATWILL, "token", "create", "--state-dir", state_dir, "--ttl", ttl,
            "--uses", "1", "--json"]


def join(url: str, token: str, ca_hash: str, name: str, state_dir: str) -> list[str]:
    return [ATWILL, "join", url, "--token", token, "--ca-hash", ca_hash, "--name", name,
            "--state-dir", state_dir, "--foreground"]


def agent(state_dir: str) -> list[str]:
    # Lab hosts share the machine's /etc: each reads its join settings from its own dir.
    return [ATWILL, "agent", "--state-dir", state_dir, "--join-config",
            str(Path(state_dir) / "join.env")]


def node_remove(name: str, state_dir: str, force: bool) -> list[str]:
    return [ATWILL, "node", "remove", name, "--state-dir", state_dir,
            *(["--force"] if force else [])]


def node_list(state_dir: str) -> list[str]:
    return [ATWILL, "node", "list", "--state-dir", state_dir, "--json"]


# A stdlib-only HTTPS GET, run inside a namespace: prints the status code.
_PROBE = """
import http.client, ssl, sys, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
ctx = ssl.create_default_context(cafile=sys.argv[2])
conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=float(sys.argv[3]))
conn.request("GET", url.path or "/")
print(conn.getresponse().status)
"""


def https_status(ns: Namespace, url: str, cafile: str, timeout: float = 5) -> int | None:
    """Status of GET `url` from inside `ns`, verifying TLS with `cafile`; None if unreachable."""
    try:
        proc = run_in(ns, [PYTHON, "-c", _PROBE, url, cafile, str(timeout)], check=False,
                      timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        return None
    out = proc.stdout.strip()
    return int(out) if proc.returncode == 0 and out.isdigit() else None
