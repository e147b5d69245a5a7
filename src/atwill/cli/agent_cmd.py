"""atwill join / agent / leave: the node side."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from ..agent import autojoin
from ..agent.config import DEFAULT_NODE_DIR, AgentConfig
from ..logs import setup_logging
from .options import console, err

NodeDir = Annotated[Path, typer.Option("--state-dir", envvar="ATWILL_NODE_DIR",
                                       help="The node's state directory.")]
JoinConfig = Annotated[Path, typer.Option(
    "--join-config", envvar="ATWILL_JOIN_CONFIG",
    help="KEY=VALUE file with the join settings, read when the node has not joined.")]


def register(app: typer.Typer) -> None:
    app.command("join")(join)
    app.command("agent")(agent)
    app.command("leave")(leave)


def _join(url: str, token: str, ca_hash: str, state_dir: Path, name: str | None,
          overlay_port: int, skip_prereqs: bool, aggregates: list[str],
          storage: Path | None = None, storage_vg: str | None = None) -> AgentConfig:
    from ..agent.join import JoinError
    from ..agent.join import join as do_join

    try:
        return do_join(url, token, ca_hash, state_dir, name, overlay_port, skip_prereqs,
                       aggregates, storage=storage,
                       **({"storage_vg": storage_vg} if storage_vg else {}))
    except JoinError as error:
        err.print(f"[red]join failed:[/red] {error}", highlight=False)
        raise typer.Exit(1) from None


def join(url: str = typer.Argument(..., help="The controller, https://HOST:PORT"),
         token: str = typer.Option(..., "--token", help="A join token."),
         ca_hash: str = typer.Option(..., "--ca-hash", help="sha256:… of the cluster CA."),
         name: str = typer.Option(None, help="Node name (default: the host name)."),
         overlay_port: int = typer.Option(51820, help="Overlay (WireGuard) listen port."),
         aggregate: list[str] = typer.Option(  # noqa: B008
             [], "--aggregate", help="A host aggregate to join (repeatable; it must exist)."),
         storage: Path = typer.Option(
             None, "--storage", envvar="ATWILL_JOIN_STORAGE",
             help="Also keep volumes in this directory (a storage node)."),
         storage_vg: str = typer.Option(
             None, "--storage-vg", envvar="ATWILL_JOIN_STORAGE_VG",
             help="Keep volumes as LVM thin volumes of VG[/POOL] (pool default VG-pool); "
                  "--storage then holds only the working files."),
         foreground: bool = typer.Option(False, help="Run the agent in this process."),
         skip_prereqs: bool = typer.Option(False, hidden=True),
         state_dir: NodeDir = DEFAULT_NODE_DIR) -> None:
    """Join this machine to a cloud as a compute node, then start its agent."""
    config = _join(url, token, ca_hash, state_dir, name, overlay_port, skip_prereqs,
                   aggregate, storage, storage_vg)
    console.print(f"joined as {config.name} (node {config.node_id})", highlight=False)
    if foreground:
        raise typer.Exit(_run_agent(config))
    pid = _spawn_agent(state_dir)
    console.print(f"agent started (pid {pid}); log: {state_dir / 'agent.log'}")


def _spawn_agent(state_dir: Path) -> int:
    with open(state_dir / "agent.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "atwill.cli.main", "agent",
                                 "--state-dir", str(state_dir)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc.pid


def _run_agent(config: AgentConfig) -> int:
    from ..agent.daemon import Agent

    setup_logging(os.environ.get("ATWILL_LOG_LEVEL", "info"))
    try:
        return Agent(config).run()
    except RuntimeError as error:
        err.print(f"[red]{error}[/red]")
        return 1


def agent(state_dir: NodeDir = DEFAULT_NODE_DIR,
          join_config: JoinConfig = autojoin.DEFAULT_CONFIG) -> None:
    """Run the node agent; a host that has not joined joins first (autojoin).

    The join settings are ATWILL_JOIN_URL, ATWILL_JOIN_TOKEN, ATWILL_JOIN_CA_HASH (and
    optionally ATWILL_JOIN_NAME, ATWILL_OVERLAY_PORT, ATWILL_JOIN_STORAGE,
    ATWILL_JOIN_STORAGE_VG), from the environment or the --join-config file. A failing
    join is retried with backoff, never given up.
    """
    setup_logging(os.environ.get("ATWILL_LOG_LEVEL", "info"))
    if not AgentConfig.joined(state_dir):
        try:
            settings = autojoin.JoinSettings.find(os.environ, join_config)
        except (autojoin.SettingsError, OSError) as error:
            err.print(f"[red]cannot autojoin:[/red] {error}", highlight=False)
            raise typer.Exit(1) from None
        if settings is None:
            err.print(f"[red]{state_dir} holds no joined node and there are no join settings "
                      f"({', '.join(autojoin.REQUIRED)} in the environment or "
                      f"{join_config}).[/red]", highlight=False)
            raise typer.Exit(1)
        try:
            autojoin.autojoin(settings, state_dir)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    raise typer.Exit(_run_agent(AgentConfig.load(state_dir)))


def leave(force: bool = typer.Option(False, "--force",
                                     help="Leave even with instances (they become ERROR) "
                                     "or volumes and snapshots (kept in error, on no node, "
                                     "for their owners to delete; their data is lost)."),
          purge: bool = typer.Option(False, "--purge", help="Also delete the disks of this "
                                     "node's instances (kept otherwise, VMs stopped)."),
          drain: bool = typer.Option(False, "--drain", help="Move its instances to other "
                                     "nodes first (asked on a terminal)."),
          state_dir: NodeDir = DEFAULT_NODE_DIR) -> None:
    """Remove this node from its cloud and clean what atwill made on this host.

    VMs are stopped and their taps removed; their disks (and the images they need) are
    kept unless --purge. This also works on a node its controller already removed.
    """
    from ..agent.client import ClusterError, client, tls_context
    from ..agent.daemon import cleanup, stop_running
    from . import leave_drain

    try:
        config = AgentConfig.load(state_dir)
    except FileNotFoundError as error:
        if purge and (state_dir / "instances").is_dir():  # the disks a leave kept
            cleanup(AgentConfig(state_dir, "", "", ""), purge=True)
            console.print(f"the kept instances in {state_dir} are deleted")
            return
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    try:
        context = tls_context(config.ca, config.cert, config.key)
    except (OSError, ssl.SSLError) as error:
        err.print(f"[red]cannot load this node's certificates in {config.ca.parent}:[/red] "
                  f"{error}", highlight=False)
        raise typer.Exit(1) from None
    try:
        with client(config.controller_url, context) as http:
            leave_drain.leave(http, config.node_id, force, drain)
    except ClusterError as error:
        if not error.removed:  # already removed by the operator: clean up all the same
            err.print(f"[red]leave refused:[/red] {error.message}", highlight=False)
            raise typer.Exit(1) from None
    except (OSError, httpx.TransportError) as error:  # httpx's errors are no OSError
        err.print(f"[red]cannot reach the controller at {config.controller_url}:[/red] "
                  f"{error}", highlight=False)
        raise typer.Exit(1) from None
    stop_running(config)
    kept = cleanup(config, purge=purge)
    if kept:
        console.print(f"node {config.name} left; the disks of {len(kept)} stopped "
                      f"instance(s) are kept in {config.instances_dir} "
                      "('atwill leave --purge' deletes them)")
        return
    console.print(f"node {config.name} left; this host is clean")
