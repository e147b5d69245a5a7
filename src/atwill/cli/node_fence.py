"""atwill node fence: a node's fence devices, a status test, fencing and confirmation.

Like the other `atwill node` commands these act on the controller's database and
state directory (run them on the controller host); the same operations are in the
cluster API under /cluster/v1/nodes/NODE/fence for cloud admins.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .ops import controller, print_json
from .options import StateDir, console, err

app = typer.Typer(no_args_is_help=True, help="Fence devices of nodes and fencing.")


@app.command("set")
def set_(node: str,
         agent: str = typer.Option(..., "--agent", help="A fence agent, e.g. fence_ipmilan."),
         option: list[str] = typer.Option([], "--option", help="KEY=VALUE for the agent's "
                                          "stdin (ip, username, password, lanplus, …)."),
         level: int = typer.Option(1, "--level", help="Fencing level; 1 is tried first."),
         name: str = typer.Option(None, "--name", help="Device name (default: the agent)."),
         timeout: int = typer.Option(30, "--timeout", help="Seconds one run may take."),
         state_dir: StateDir = None) -> None:
    """Create or replace a fence device of NODE (secrets stored encrypted)."""
    from ..controller.cluster import nodes
    from ..controller.fencing import devices
    from ..core.fence_options import parse_pairs

    with controller(state_dir) as ctl, ctl.db.session() as session:
        target = nodes.find(session, node)
        device = devices.set_device(ctl, session, target.name, agent, parse_pairs(option),
                                    level, name, timeout)
        view = devices.to_view(device)
    console.print(f"fence device {view['name']} ({agent}, level {level}) set for {node}")


@app.command("show")
def show(node: str, state_dir: StateDir = None) -> None:
    """NODE's fencing state, devices (secrets masked) and latest records (JSON)."""
    from ..controller.cluster import nodes
    from ..controller.fencing import api

    with controller(state_dir) as ctl, ctl.db.session() as session:
        print_json(api.status(session, nodes.find(session, node)))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """Every node's fence devices, in the order they are tried."""
    from ..controller.fencing import devices

    with controller(state_dir) as ctl, ctl.db.session() as session:
        views = [devices.to_view(d) for d in devices.listing(session)]
    if as_json:
        print_json(views)
        return
    table = Table("node", "level", "name", "agent", "options")
    for v in views:
        shown = " ".join(f"{k}={val}" for k, val in v["options"].items())
        table.add_row(v["node"], str(v["level"]), v["name"], v["agent"], shown)
    console.print(table)


@app.command("remove")
def remove(node: str, name: str = typer.Argument(None, help="Device (default: all)."),
           state_dir: StateDir = None) -> None:
    """Remove one fence device of NODE, or all of them."""
    from ..controller.fencing import devices

    with controller(state_dir) as ctl, ctl.db.session() as session:
        count = devices.remove(session, node, name)
    console.print(f"{count} fence device(s) of {node} removed")


@app.command("test")
def test(node: str, state_dir: StateDir = None) -> None:
    """Ask every fence device of NODE for its power status (powers nothing off)."""
    from ..controller.cluster import nodes
    from ..controller.fencing import api

    with controller(state_dir) as ctl, ctl.db.session() as session:
        results = api.test_node(ctl, session, nodes.find(session, node))
    if not results:
        err.print(f"[red]node {node} has no fence device; add one with 'atwill node fence "
                  "set'[/red]")
        raise typer.Exit(1)
    print_json(results)
    if not all(r["ok"] for r in results):
        raise typer.Exit(1)


@app.command("off")
def off(node: str, state_dir: StateDir = None) -> None:
    """Fence NODE now: power it off through its devices, level by level."""
    from ..controller.fencing import api

    _report(node, state_dir, lambda ctl, session, target: api.fence_node(ctl, session, target))


@app.command("confirm")
def confirm(node: str, state_dir: StateDir = None) -> None:
    """Say NODE is powered off (as stonith_admin --confirm): it then counts as fenced."""
    from ..controller.fencing import api

    _report(node, state_dir, lambda _ctl, session, target: api.confirm(session, target))


def _report(node: str, state_dir: Path | None, action: Callable[..., Any]) -> None:
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        result = action(ctl, session, nodes.find(session, node))
    print_json(dataclasses.asdict(result))
    if not result.ok:
        raise typer.Exit(1)
