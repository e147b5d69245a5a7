"""atwill node: list, show, disable, enable and remove compute nodes."""

from __future__ import annotations

import typer
from rich.table import Table

from . import node_fence
from .ops import controller, print_json
from .options import StateDir, console

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
        False, "--force", help="Remove even with instances on it (they become ERROR)."),
        state_dir: StateDir = None) -> None:
    """Remove the node: revoke its certificate, withdraw it from every peer."""
    from ..controller.cluster import nodes

    with controller(state_dir) as ctl, ctl.db.session() as session:
        nodes.remove(session, nodes.find(session, name), force)
    console.print(f"node {name} removed; its agent will clean up its host")


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
