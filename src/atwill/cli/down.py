"""atwill down: stop what `atwill up` started and remove its traces from the host."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import typer

from .options import StateDir, console, err, settings

PIDFILE = "up.pid"
STOP_SECONDS = 60.0  # `up` stops its VMs (5 s each at most) before it exits


def node_name() -> str:
    """The name `atwill up` gives its local node."""
    return socket.gethostname().split(".")[0]


def running(state_dir: Path) -> int | None:
    """The pid of the `atwill up` serving this state directory, if it still runs."""
    try:
        pid = int((state_dir / PIDFILE).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def claim(state_dir: Path) -> None:
    """One `atwill up` per state directory; `down` finds it by this file."""
    pid = running(state_dir)
    if pid is not None and pid != os.getpid():
        raise RuntimeError(f"atwill up (pid {pid}) already runs for {state_dir}")
    (state_dir / PIDFILE).write_text(f"{os.getpid()}\n")


def release(state_dir: Path) -> None:
    if running(state_dir) == os.getpid():
        (state_dir / PIDFILE).unlink(missing_ok=True)


def clean_node(node_dir: Path, purge: bool = False) -> list[str]:
    """Stop the local node's agent and VMs, remove its networking; the disks kept.

    The node stays joined (its certificate and agent.yaml are kept), so the next
    `atwill up` brings its servers back. purge: the node's files go too.
    """
    from atwill.agent.overlay_driver import OverlayDriver

    from ..agent.config import AgentConfig
    from ..agent.daemon import cleanup, stop_running
    from ..agent.instances import remove_all
    from ..agent.network import NetworkManager
    from ..agent.storage.node import stop_exports

    if not node_dir.is_dir():
        return []
    try:
        config = AgentConfig.load(node_dir)
    except FileNotFoundError:  # stopped before it joined: its name is still the host's
        config = AgentConfig(node_dir, "", "", node_name())
    stop_running(config)
    stop_exports(config)  # no volume is served once the node is down
    if purge:
        return cleanup(config, purge=True)
    kept = remove_all(config, purge=False)
    NetworkManager(config).teardown()
    OverlayDriver(config).teardown()
    return kept


def stop_up(state_dir: Path, timeout: float = STOP_SECONDS) -> bool:
    """Ask a running `atwill up` to stop (it cleans up itself); whether one ran."""
    pid = running(state_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running(state_dir) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(state_dir) == pid:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)  # its pidfile stays behind; the next `up` sees a dead pid
    return True


def down(state_dir: StateDir = None, purge: bool = typer.Option(
        False, "--purge", help="Also delete the state directory (the cloud's database, "
        "images, keys and the node's disks).")) -> None:
    """Stop `atwill up`'s controller, agent and VMs and remove everything it set up on this
    host (bridges, taps, nftables tables, ip rules, routes, dnsmasq, metadata service).

    The state directory is kept, so the next `atwill up` brings the same cloud back.
    """
    conf = settings(state_dir)
    if not conf.state_dir.is_dir():
        err.print(f"[red]{conf.state_dir} does not exist; nothing to stop.[/red]",
                  highlight=False)
        raise typer.Exit(1)
    stopped = stop_up(conf.state_dir)
    kept = clean_node(conf.path("node"), purge=purge)
    (conf.state_dir / PIDFILE).unlink(missing_ok=True)
    what = "stopped atwill up; " if stopped else ""
    if purge:
        shutil.rmtree(conf.state_dir)
        console.print(f"{what}this host is clean; {conf.state_dir} is deleted", highlight=False,
                      soft_wrap=True)
        return
    disks = f" (the disks of {len(kept)} server(s) kept)" if kept else ""
    console.print(f"{what}this host is clean; {conf.state_dir} is kept{disks}; "
                  "'atwill up' starts the cloud again", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("down")(down)
