"""A real Keystone from PyPI beside atwill in `atwill bench api --keystone`.

Keystone (Fernet tokens, SQLite, its public API under gunicorn's sync workers, plain
HTTP on 127.0.0.1) runs from a virtualenv of its own, built once under atwill's cache
directory (never the project's venv: Keystone's pins would clash with atwill's). Each
run writes keystone.conf, the database and both key repositories into a temporary
directory, bootstraps an admin user/project/role, serves, is measured with the same
load generators as atwill, is stopped by its PID and the directory removed.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx

from ..guest.packages import cache_dir
from .api import _get_rate, _rate

REQUIREMENTS = ("keystone==30.0.0", "gunicorn==27.0.1")
STAMP = ".atwill-keystone"
# The ratios reported: atwill's figure over Keystone's, and the issue's goals.
GOALS = {"token_validate_per_s": 40.0, "token_issue_per_s": 5.0}
MEASURED = ("token_validate_per_s", "token_issue_per_s", "version_doc_per_s")

# oslo.config in Keystone's WSGI entry point parses sys.argv, which is gunicorn's.
WSGI_SHIM = ("import sys\nsys.argv = sys.argv[:1]\n"
             "from keystone.wsgi.api import application  # noqa: E402,F401\n")


def venv_dir() -> Path:
    return cache_dir() / "keystone-venv"


# Keystone is measured twice: as PyPI ships it (oslo.cache off) and with its cache on,
# in each worker's memory (as deployments do with memcached, minus the round trip).
VARIANTS = {"nocache": False, "cached": True}


def render_config(tmp: Path, cache: bool = True) -> str:
    """keystone.conf: Fernet, SQLite file, key repositories and log all inside tmp."""
    cached = ["[cache]", "enabled = true", "backend = dogpile.cache.memory", ""]
    return "\n".join([
        "[DEFAULT]", f"log_file = {tmp / 'keystone.log'}", "",
        "[database]", f"connection = sqlite:///{tmp / 'keystone.db'}", "",
        "[token]", "provider = fernet", "",
        "[fernet_tokens]", f"key_repository = {tmp / 'fernet-keys'}", "",
        "[credential]", f"key_repository = {tmp / 'credential-keys'}", "",
        *(cached if cache else [])])


def issue_body(password: str) -> dict:
    """Password, project-scoped: the same body atwill's issue loop posts."""
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}


def gunicorn_args(venv: Path, tmp: Path, port: int, workers: int) -> list[str]:
    return [str(venv / "bin" / "gunicorn"), "--no-control-socket", "--workers", str(workers),
            "--pythonpath", str(tmp), "--bind", f"127.0.0.1:{port}",
            "--error-logfile", str(tmp / "gunicorn.log"), "ks_wsgi:application"]


def ratios(atwill: dict[str, float], keystone: dict[str, float],
           label: str = "keystone") -> dict[str, float]:
    """atwill ÷ Keystone for each rate both measured."""
    return {f"{key}_vs_{label}": atwill[key] / keystone[key]
            for key in MEASURED if key in atwill and keystone.get(key)}


def verdicts(ratio: dict[str, float], label: str = "keystone") -> list[str]:
    """One line per goal: the ratio, the goal and met/missed."""
    lines = []
    for key, goal in GOALS.items():
        value = ratio.get(f"{key}_vs_{label}")
        if value is None:
            continue
        state = "met" if value >= goal else "missed"
        lines.append(f"{key} atwill/{label} {value:,.1f}x (goal >= {goal:g}x): {state}")
    return lines


def ensure_venv() -> Path:
    """The cached venv, built the first time. The stamp is written last: a build that
    stopped half way has none and is built again."""
    venv = venv_dir()
    wanted = "\n".join(REQUIREMENTS)
    stamp = venv / STAMP
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *REQUIREMENTS], check=True)
    stamp.write_text(wanted)
    return venv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Keystone:
    """One throwaway Keystone: `with Keystone(workers) as ks:` ks.url, ks.token()."""

    def __init__(self, workers: int, cache: bool = True) -> None:
        self.workers = workers
        self.cache = cache
        self.venv = ensure_venv()
        self.tmp = Path(tempfile.mkdtemp(prefix="atwill-keystone-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.proc: subprocess.Popen | None = None
        self.cacert = None  # plain HTTP: what api._rate's client needs to know

    def _manage(self, *args: str) -> None:
        subprocess.run([str(self.venv / "bin" / "keystone-manage"), "--config-file",
                        str(self.tmp / "keystone.conf"), *args],
                       check=True, capture_output=True, timeout=300)

    def __enter__(self) -> Keystone:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        (self.tmp / "keystone.conf").write_text(render_config(self.tmp, self.cache))
        (self.tmp / "ks_wsgi.py").write_text(WSGI_SHIM)
        user = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        self._manage("db_sync")
        self._manage("fernet_setup", *user)
        self._manage("credential_setup", *user)
        self._manage("bootstrap", "--bootstrap-password", self.password,
                     "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                     "--bootstrap-role-name", "admin", "--bootstrap-region-id", "RegionOne",
                     "--bootstrap-public-url", f"{self.url}/v3")
        env = {**os.environ, "OS_KEYSTONE_CONFIG_DIR": str(self.tmp),
               "OS_KEYSTONE_CONFIG_FILES": "keystone.conf"}
        with open(self.tmp / "stderr.log", "wb") as stderr:
            self.proc = subprocess.Popen(
                gunicorn_args(self.venv, self.tmp, self.port, self.workers), env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keystone exited {self.proc.returncode}: "
                                   + (self.tmp / "stderr.log").read_text()[-2000:])
            try:
                if httpx.get(f"{self.url}/v3", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("keystone did not answer within 60 s")
            time.sleep(0.5)

    def token(self) -> str:
        resp = httpx.post(f"{self.url}/v3/auth/tokens", json=issue_body(self.password),
                          timeout=60)
        resp.raise_for_status()
        return resp.headers["X-Subject-Token"]

    def pids(self) -> list[int]:
        """gunicorn's arbiter and its workers."""
        if self.proc is None:
            return []
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        workers = children.read_text().split() if children.exists() else []
        return [self.proc.pid, *map(int, workers)]

    def close(self) -> None:
        """Stop gunicorn by its PID (it stops its workers; SIGKILL to the session it
        leads after 30 s), then remove the directory."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def measure(workers: int, rounds: int, cache: bool = True) -> dict[str, float]:
    """Keystone's rates with atwill's load: the issue loop (httpx, 8 connections), wrk
    (or httpx) for the version document and validation."""
    with Keystone(workers, cache) as ks:
        target = SimpleNamespace(url=ks.url, cacert=None)
        token = ks.token()
        results = {"token_issue_per_s": asyncio.run(_rate(
            target, max(rounds // 10, 50), "POST", "/v3/auth/tokens", {},
            issue_body(ks.password), 201))}
        results["version_doc_per_s"] = _get_rate(target, rounds, "/v3", {})
        results["token_validate_per_s"] = _get_rate(
            target, rounds, "/v3/auth/tokens?nocatalog",
            {"X-Auth-Token": token, "X-Subject-Token": token})
        return results
