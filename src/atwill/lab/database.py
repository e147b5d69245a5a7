"""PostgreSQL in a lab host of its own (pg), from Debian's package binaries, no systemd.

The server runs as the postgres user from the package's bin directory with its data
directory, socket directory and log in the host's state directory, listening on the
host's WAN address; the lab knows it by the PID it started (the postmaster's: setpriv
and env exec in place) and stops it with a fast shutdown (SIGINT), so nothing is left
behind (its dynamic shared memory is files in the data directory, not /dev/shm).
Fsync is off: a lab's database lives as long as the lab.
"""

from __future__ import annotations

import os
import pwd
import secrets
import signal
from pathlib import Path

from . import processes
from .commands import run_in
from .netns import Namespace
from .processes import Process

PACKAGES = Path("/usr/lib/postgresql")
PORT = 5432
USER = "atwill"  # the superuser initdb makes, and the controllers' login
DBNAME = "atwill"
OS_USER = "postgres"  # Debian's package makes it; the server refuses to run as root
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
            "shared_buffers": "32MB", "dynamic_shared_memory_type": "mmap",
            "max_connections": "200"}


class DatabaseError(RuntimeError):
    """PostgreSQL cannot be set up for the lab; the message says why."""


def bin_dir(root: Path = PACKAGES) -> Path:
    """The newest installed major version's bin directory (Debian's postgresql package)."""
    versions = sorted((p for p in root.glob("*") if (p / "bin" / "postgres").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else -1)
    if not versions:
        raise DatabaseError(f"no PostgreSQL server in {root}/*/bin: "
                            "apt-get install postgresql")
    return versions[-1] / "bin"


def as_postgres(argv: list[str], cwd: str) -> list[str]:
    """argv run as the postgres user from `cwd` (it cannot read the caller's directory)."""
    return ["setpriv", f"--reuid={OS_USER}", f"--regid={OS_USER}", "--init-groups", "--",
            "env", "-C", cwd, *argv]


def paths(state_dir: str) -> dict[str, str]:
    base = Path(state_dir)
    return {"data": str(base / "data"), "sockets": str(base / "run"),
            "password": str(base / "password"), "log": str(base / "postgres.log")}


def initdb_argv(bindir: Path, state_dir: str) -> list[str]:
    where = paths(state_dir)
    return [str(bindir / "initdb"), "-D", where["data"], "-U", USER, "--pwfile",
            where["password"], "--auth-local=trust", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--no-sync"]


def server_argv(bindir: Path, state_dir: str, address: str, port: int = PORT) -> list[str]:
    where = paths(state_dir)
    argv = [str(bindir / "postgres"), "-D", where["data"], "-k", where["sockets"],
            "-p", str(port), "-c", f"listen_addresses={address}"]
    for key, value in SETTINGS.items():
        argv += ["-c", f"{key}={value}"]
    return argv


def hba_line(subnet: str) -> str:
    """The lab's hosts (controllers) log in by password over the lab WAN."""
    return f"host all all {subnet} scram-sha-256\n"


def url(address: str, password: str, port: int = PORT) -> str:
    return f"postgresql://{USER}:{password}@{address}:{port}/{DBNAME}"


def _chown(path: Path, mode: int) -> None:
    entry = pwd.getpwnam(OS_USER)
    path.chmod(mode)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def prepare(ns: Namespace, state_dir: str, subnet: str) -> str:
    """initdb into the host's state directory; returns the password of USER."""
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        raise DatabaseError(f"no {OS_USER} user: apt-get install postgresql") from None
    bindir = bin_dir()
    where = paths(state_dir)
    base = Path(state_dir)
    base.mkdir(mode=0o700, exist_ok=True)
    _chown(base, 0o700)
    password = secrets.token_urlsafe(24)
    secret = Path(where["password"])
    secret.write_text(password + "\n")
    _chown(secret, 0o600)
    Path(where["sockets"]).mkdir(mode=0o700, exist_ok=True)
    _chown(Path(where["sockets"]), 0o700)
    run_in(ns, as_postgres(initdb_argv(bindir, state_dir), state_dir), timeout=120)
    with open(Path(where["data"]) / "pg_hba.conf", "a") as hba:
        hba.write(hba_line(subnet))
    return password


def start(ns: Namespace, state_dir: str, address: str) -> Process:
    """The server, started in the background as the postgres user."""
    argv = as_postgres(server_argv(bin_dir(), state_dir, address), state_dir)
    return processes.spawn(ns, argv, Path(paths(state_dir)["log"]))


def ready(ns: Namespace, state_dir: str) -> bool:
    argv = [str(bin_dir() / "pg_isready"), "-q", "-h", paths(state_dir)["sockets"],
            "-p", str(PORT)]
    return run_in(ns, argv, check=False, timeout=20).returncode == 0


def create_database(ns: Namespace, state_dir: str) -> None:
    argv = [str(bin_dir() / "createdb"), "-h", paths(state_dir)["sockets"], "-p", str(PORT),
            "-U", USER, DBNAME]
    run_in(ns, as_postgres(argv, state_dir), timeout=60)


def stop(proc: Process, timeout: float = 20) -> None:
    """Fast shutdown (SIGINT: sessions are ended, then a clean stop); SIGKILL if stuck."""
    if processes.signal_process(proc, signal.SIGINT) and \
            not processes.wait_gone([proc], timeout):
        processes.kill(proc)
