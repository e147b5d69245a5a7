"""atwill node: list, show, disable, enable, drain, restore and remove compute nodes;
install-service."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ..agent import autojoin, service
from ..agent.config import DEFAULT_NODE_DIR
from . import node_fence
from .agent_cmd import NodeDir
from .ops import controller, print_json
from .options import StateDir, console, err

app = typer.Typer(no_args_is_help=True, help="Compute nodes.")
app.add_typer(node_fence.app, name="fence")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """Nodes with state, last heartbeat, overlay address and size."""
    from sqlalchemy import select

    from ..controller.cluster import nodes
    from ..controller.db.models import Node

    with controller(state_dir) as ctl, ctl.db.session() as session:
        views = [nodes.to_view(n) for n in session.scalars(select(Node).order_by(Node.name))]
    if as_json:
        print_json(views)
        return
    table = Table("name", "state", "enabled", "overlay", "endpoint", "accel", "vcpus",
                  "memory_mb", "last heartbeat")
    for v in views:
        table.add_row(v["name"], v["state"], "yes" if v["enabled"] else "no",
                      v["overlay_ip"] or "-", v["endpoint"] or "-", v["accelerator"] or "-",
                      str(v["vcpus"]), str(v["memory_mb"]), v["last_heartbeat"] or "-")
    console.print(table)


@app.command("show")
def show(name: str, state_dir: StateDir = None) -> None:
    """Everything known about one node, inventory included (JSON)."""
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        print_json(nodes.to_view(nodes.find(session, name)))


@app.command("disable")
def disable(name: str, reason: str = typer.Option(None, help="Why (shown in listings)."),
            state_dir: StateDir = None) -> None:
    """Stop scheduling onto the node."""
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        nodes.set_enabled(session, nodes.find(session, name), False, reason)
    console.print(f"node {name} disabled")


@app.command("enable")
def enable(name: str, state_dir: StateDir = None) -> None:
    """Schedule onto the node again."""
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        nodes.set_enabled(session, nodes.find(session, name), True, None)
    console.print(f"node {name} enabled")


@app.command("remove")
def remove(name: str, force: bool = typer.Option(
        False, "--force", help="Remove even with instances, volumes or snapshots on it: the "
        "instances become ERROR; the volumes and snapshots are kept in error, on no node "
        "(their data, on its disk, is lost), for their owners to delete."),
        drain_first: bool = typer.Option(
            False, "--drain", help="Move its instances away first (atwill node drain)."),
        parallel: int = typer.Option(2, min=1, max=16, help="With --drain: moves at once."),
        state_dir: StateDir = None) -> None:
    """Remove the node: revoke its certificate, withdraw it from every peer.

    A node holding instances is refused unless --drain (or, on a terminal, when you
    agree to drain it first) or --force. A storage node holding volumes or snapshots is
    refused unless --force (a drain does not move them: delete them, or upload them to
    images first)."""
    from ..controller.cluster import nodes
    from ..controller.volume import node_removal

    with controller(state_dir) as ctl:
        with ctl.db.session() as session:
            node = nodes.find(session, name)
            held = max(len(nodes.instances_on(session, node)), node.running_vms)
            volumes = node_removal.held(session, node)
            if volumes and not force:
                fail(node_removal.refusal(node, volumes))
        if held and not force:
            if not drain_first and not _ask(f"Node {name} holds {held} instance(s); drain "
                                            "it (move them away) first?"):
                fail(f"Node {name} still holds {held} instance(s): drain it first "
                     f"(atwill node remove {name} --drain), move or delete them, or remove "
                     "with --force (they become ERROR).")
            _drain(ctl, name, parallel, 3600.0)
            _settle(ctl, name)
        with ctl.db.session() as session:
            nodes.remove(session, nodes.find(session, name), force)
    console.print(f"node {name} removed; its agent will clean up its host")


def _ask(question: str) -> bool:
    """A yes/no on a terminal; never asked (no) when stdin is not one."""
    return sys.stdin.isatty() and typer.confirm(question, default=False)


def _settle(ctl: Any, name: str, timeout: float = 60.0) -> None:
    """Wait for the node's own count of running guests to reach 0 (its next heartbeats)."""
    from ..controller.cluster import nodes

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctl.db.session() as session:
            if not nodes.find(session, name).running_vms:
                return
        time.sleep(1.0)


@app.command("drain")
def drain(name: str,
          parallel: int = typer.Option(2, min=1, max=16, help="Instances moving at once."),
          timeout: float = typer.Option(3600.0, min=1.0, help="Give up after (seconds)."),
          state_dir: StateDir = None) -> None:
    """Disable the node (reason "draining") and move every instance away.

    Live migration where it can, cold migration (then confirmed) where it cannot; the
    scheduler picks each destination. Run again, it continues with what is left. Exits 1
    naming the instances it could not move, and why."""
    with controller(state_dir) as ctl:
        _drain(ctl, name, parallel, timeout)
    console.print(f"node {name} is drained; 'atwill node restore {name}' brings it back")


def _drain(ctl: Any, name: str, parallel: int, timeout: float) -> None:
    from ..controller.cluster import drain as draining
    from ..controller.cluster import nodes

    with ctl.db.session() as session:
        run = draining.begin(session, nodes.find(session, name), parallel)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[now]}"), TimeElapsedColumn(), console=console,
                  transient=not console.is_terminal) as bar:
        task = bar.add_task(f"draining {name}", total=run.total or 1, now="")

        def report(p: Any) -> None:
            now = f"moving: {', '.join(p.moving)}" if p.moving else ""
            bar.update(task, total=p.total or 1, completed=p.done if p.total else 1, now=now)

        result = draining.run_until_done(ctl, run, report, timeout=timeout)
    if result.stuck:
        for server, why in result.stuck:
            err.print(f"[red]{server}[/red]: {why}", highlight=False)
        fail(f"{len(result.stuck)} instance(s) could not be moved off {name}; it stays "
             "disabled (draining): run 'atwill node drain' again to retry.")


@app.command("restore")
def restore(name: str, state_dir: StateDir = None) -> None:
    """Schedule onto a drained (or disabled) node again."""
    from ..controller.cluster import drain as draining
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        draining.restore(session, nodes.find(session, name))
    console.print(f"node {name} restored: instances may be scheduled onto it again")


@app.command("evacuate")
def evacuate(name: str, host: str = typer.Option(None, help="Rebuild them all on this node."),
             state_dir: StateDir = None) -> None:
    """Rebuild every instance of a down node that is fenced or forced down elsewhere."""
    from ..controller.cluster import nodes
    from ..controller.ha.evacuate import evacuate_node

    with controller(state_dir) as ctl, ctl.db.session() as session:
        results = evacuate_node(session, ctl, nodes.find(session, name), host)
    for r in results:
        console.print(f"{r['server']}: {'accepted' if r['accepted'] == 'True' else 'refused'}"
                      f" ({r['message']})")
    if not results:
        console.print(f"node {name} holds no instance")


@app.command("install-service")
def install_service(
        url: str = typer.Option(None, "--url", help="Also write the join settings: the "
                                "controller, https://HOST:PORT."),
        token: str = typer.Option(None, "--token", help="A join token (with --url)."),
        ca_hash: str = typer.Option(None, "--ca-hash", help="sha256:… of the cluster CA."),
        name: str = typer.Option(None, "--name", help="Node name (default: the host name)."),
        env_file: Path = typer.Option(autojoin.DEFAULT_CONFIG, "--env-file",
                                      help="The join settings file the unit reads."),
        unit_dir: Path = typer.Option(service.UNIT_DIR, "--unit-dir",
                                      help="Where the unit is written."),
        state_dir: NodeDir = DEFAULT_NODE_DIR) -> None:
    """Write the systemd unit that runs 'atwill agent' at boot (which joins first if needed).

    With --url, --token and --ca-hash it also writes them to --env-file (mode 0600).
    """
    join = {"ATWILL_JOIN_URL": url, "ATWILL_JOIN_TOKEN": token, "ATWILL_JOIN_CA_HASH": ca_hash}
    given = [key for key, value in join.items() if value]
    if given and len(given) < len(join) or (name and not given):
        fail("--url, --token and --ca-hash go together (and --name with them)")
    unit = unit_dir / service.UNIT_NAME
    try:
        if given:
            values = {**join, **({"ATWILL_JOIN_NAME": name} if name else {})}
            _write(env_file, service.env_text({k: v for k, v in values.items() if v}), 0o600)
            console.print(f"wrote the join settings to {env_file}", highlight=False)
        _write(unit, service.unit_text(service.atwill_program(), state_dir.absolute(),
                                       env_file.absolute()), 0o644)
    except (OSError, ValueError) as error:
        fail(f"cannot install the service: {error}")
    console.print(f"wrote {unit}; start it with: systemctl daemon-reload && "
                  f"systemctl enable --now {service.UNIT_NAME}", highlight=False,
                  soft_wrap=True)


def fail(message: str) -> NoReturn:
    err.print(f"[red]{message}[/red]", highlight=False)
    raise typer.Exit(1)


def _write(path: Path, text: str, mode: int) -> None:
    """Write whole or not at all, with its mode from the start (the token is a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
