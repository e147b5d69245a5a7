"""`atwill leave --drain`: the node asks its controller to move its instances away first
(the cluster API's leave/drain, with the node's own certificate), then leaves."""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ..agent.client import ClusterError, check
from .options import console, err

# The error type of a refusal for the node's volumes (controller/volume/node_removal.py).
HOLDS_VOLUMES = "node_holds_volumes"


def leave(http: httpx.Client, node_id: str, force: bool, drain: bool) -> None:
    """Leave; a node refused for its instances drains first if asked (or agreed to)."""
    path = f"/cluster/v1/nodes/{node_id}/leave"
    try:
        check(http.post(path, params={"force": force}))
        return
    except ClusterError as error:
        if error.status != 409 or force or error.kind == HOLDS_VOLUMES:
            raise  # a drain moves instances, not a storage node's volumes
        asked = drain or (sys.stdin.isatty() and typer.confirm(
            f"{error.message}\nDrain this node (move its instances away) first?",
            default=False))
        if not asked:
            raise ClusterError(error.status, f"{error.message} Or move them away first: "
                               "atwill leave --drain.", error.kind) from None
    _drain(http, f"{path}/drain")
    deadline = time.monotonic() + 60  # its own count of running guests follows a beat late
    while True:
        try:
            check(http.post(path, params={"force": False}))
            return
        except ClusterError as error:
            if error.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(2.0)


def _drain(http: httpx.Client, path: str) -> None:
    view: dict[str, Any] = check(http.post(path)).json()
    with Progress(TextColumn("[bold]draining this node"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[now]}"), console=console) as bar:
        task = bar.add_task("drain", total=view["total"] or 1, now="")
        while view["running"]:
            time.sleep(1.0)
            view = check(http.get(path)).json()
            bar.update(task, total=view["total"] or 1, completed=view["done"],
                       now=", ".join(view["moving"]))
    if view["instances"]:
        for s in view["stuck"]:
            err.print(f"[red]{s['server']}[/red]: {s['reason']}", highlight=False)
        err.print(f"[red]{view['instances']} instance(s) could not be moved away; this "
                  "node stays disabled (draining) and has not left.[/red]")
        raise typer.Exit(1)
