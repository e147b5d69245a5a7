"""A throwaway controller on a fresh state directory, for tests and benchmarks.

It runs the real `atwill serve` process and drives it with the real clients.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from atwill.devcloud_forkserver import cli_forks

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CommandFailed(AssertionError):
    def __init__(self, args: list[str], proc: subprocess.CompletedProcess) -> None:
        super().__init__(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.stdout = proc.stdout


class Cloud:
    """One controller: its state directory, URL, admin credentials, and client helpers."""

    def __init__(self, database_url: str | None = None, tls: bool = True,
                 overlay: str = "none", workers: int = 1) -> None:
        self.state_dir = Path(tempfile.mkdtemp(prefix="atwill-test-"))
        self.port = free_port()
        self.database_url = database_url
        self.tls = tls
        self.overlay = overlay
        self.workers = workers  # controller processes; more cost CI time
        self.proc: subprocess.Popen | None = None
        self.users: dict[str, dict[str, str]] = {}

    # lifecycle -----------------------------------------------------------------
    def atwill(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "atwill"), *args, "--state-dir", str(self.state_dir)]
        if os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1":
            proc = cli_forks("atwill").run(cmd, dict(os.environ), timeout=120)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise CommandFailed(cmd, proc)
        return proc

    def init(self) -> subprocess.CompletedProcess:
        args = ["init", "--port", str(self.port), "--overlay", self.overlay]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if not self.tls:
            args.append("--insecure-http")
        return self.atwill(*args)

    def configure(self, **settings: Any) -> None:
        """Set controller settings in atwill.yaml (after init, before start)."""
        path = self.state_dir / "atwill.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        data.update(settings)
        path.write_text(yaml.safe_dump(data))

    def start(self) -> None:
        log = open(self.state_dir / "controller.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(BIN / "atwill"), "serve", "--state-dir", str(self.state_dir),
             "--workers", str(self.workers)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("controller exited:\n" + self.log())
            try:
                with self.http() as client:
                    client.get("/identity/v3")
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("controller did not start:\n" + self.log())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def destroy(self) -> None:
        self.stop()
        if getattr(self, "_snapshot_engine", None) is not None:
            self._snapshot_engine.dispose()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def log(self) -> str:
        path = self.state_dir / "controller.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # addresses and credentials ------------------------------------------------
    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def cacert(self) -> str:
        return str(self.state_dir / "pki" / "ca.pem")

    @property
    def admin_password(self) -> str:
        return (self.state_dir / "admin-password").read_text().strip()

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth-Token": token} if token else {}
        verify = ssl.create_default_context(cafile=self.cacert) if self.tls else False
        return httpx.Client(base_url=self.url, verify=verify,
                            headers=headers, timeout=30)

    def add_user(self, name: str, password: str, project: str) -> None:
        self.users[name] = {"password": password, "project": project}

    def token(self, user: str = "admin") -> str:
        password = self.admin_password if user == "admin" else self.users[user]["password"]
        project = "admin" if user == "admin" else self.users[user]["project"]
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}
        with self.http() as client:
            resp = client.post("/identity/v3/auth/tokens", json=body)
        assert resp.status_code == 201, resp.text
        return resp.headers["X-Subject-Token"]

    def clouds_yaml(self) -> Path:
        """clouds.yaml with the admin cloud plus one cloud per added user."""
        data = yaml.safe_load((self.state_dir / "clouds.yaml").read_text())
        base = data["clouds"]["atwill"]
        for name, info in self.users.items():
            cloud = json.loads(json.dumps(base))
            cloud["auth"].update(username=name, password=info["password"],
                                 project_name=info["project"])
            data["clouds"][name] = cloud
        path = self.state_dir / "test-clouds.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'atwill.db'}"

    def db_snapshot(self) -> dict[str, list[tuple]]:
        """Every row of every table, to prove a rejected request changed nothing."""
        from sqlalchemy import create_engine, select
        from sqlalchemy.pool import NullPool

        # One engine per Cloud, disposed by destroy(): its compiled SELECTs and (PostgreSQL)
        # pooled connection are reused, a new engine a call was most of a snapshot's cost.
        # SQLite connects afresh each time: a test may put another file in the database's place.
        engine = getattr(self, "_snapshot_engine", None)
        if engine is None:
            sqlite = self.db_url().startswith("sqlite")
            engine = self._snapshot_engine = create_engine(
                self.db_url(), pool_pre_ping=True, **({"poolclass": NullPool} if sqlite else {}))
        with engine.connect() as conn:
            # Each controller refreshes its own row in `controllers` every few seconds
            # (controller/controllers.py), whatever the requests: no request's doing.
            return {name: sorted(map(tuple, conn.execute(select(table))), key=repr)
                    for name, table in self._schema(engine).tables.items()
                    if name != "controllers"}

    def _schema(self, engine: Any) -> Any:
        """The database's tables, reflected once per schema version (reflection is most of
        a snapshot's cost: ~0.1-0.4 s, twice in every bad-input test)."""
        from sqlalchemy import MetaData, inspect
        from sqlalchemy.exc import SAWarning

        names = tuple(sorted(inspect(engine).get_table_names()))
        with engine.connect() as conn:
            version = tuple(conn.exec_driver_sql("SELECT version_num FROM alembic_version")) \
                if "alembic_version" in names else ()
        key = (self.db_url(), names, version)
        cached = getattr(self, "_schema_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        meta = MetaData()
        with warnings.catch_warnings():
            # Rows are what is compared; SQLite's expression indexes cannot be reflected.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", SAWarning)
            meta.reflect(engine)
        self._schema_cache = (key, meta)
        return meta

    # clients ---------------------------------------------------------------------
    def openstack(self, *args: str, user: str = "admin", check: bool = True,
                  parse: bool = True) -> Any:
        """Run the real openstack CLI; JSON-decoded output for -f json commands."""
        cloud = "atwill" if user == "admin" else user
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=str(self.clouds_yaml()))
        for key in [k for k in env if k.startswith("OS_") and k != "OS_CLIENT_CONFIG_FILE"]:
            env.pop(key)
        cmd = [str(BIN / "openstack"), "--os-cloud", cloud, *args]
        if os.environ.get("ATWILL_TEST_CLI_FORK", "1") == "1":
            proc = cli_forks().run(cmd, env, timeout=120)
        else:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise CommandFailed(cmd, proc)
        if not check:
            return proc
        if parse and "-f" in args and args[args.index("-f") + 1] == "json":
            return json.loads(proc.stdout) if proc.stdout.strip() else None
        return proc.stdout

    def sdk(self, user: str = "admin"):
        import openstack

        password = self.admin_password if user == "admin" else self.users[user]["password"]
        project = "admin" if user == "admin" else self.users[user]["project"]
        return openstack.connect(
            auth_url=f"{self.url}/identity", username=user, password=password,
            project_name=project, user_domain_id="default", project_domain_id="default",
            region_name="RegionOne", cacert=self.cacert if self.tls else None,
            verify=self.cacert if self.tls else False, identity_api_version="3")


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "atwill_test") -> Iterator[str]:
    """A new PostgreSQL database (SQLAlchemy URL) made with admin_url, dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
