"""atwill lab: many hosts on one machine (network namespaces joined by an emulated WAN)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Annotated, Any

import typer

from ..lab import Lab, LabError
from ..lab.clouds import Clouds
from ..lab.commands import CommandError
from ..lab.database import DatabaseError
from ..lab.netns import NetError
from .options import console, err

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="A lab: a controller host and node hosts in network namespaces.")

Name = Annotated[str, typer.Option("--name", help="Lab name (at most 4 letters/digits).")]
Dir = Annotated[Path | None, typer.Option(
    "--dir", help="Lab directory (default /var/lib/atwill-lab/NAME).")]
HostArg = Annotated[str, typer.Argument(help="Host name (ctl, node1, ...).")]
# CommandError: an atwill command run in a lab host refused (e.g. removing a busy node).
FAILURES = (LabError, CommandError, NetError, DatabaseError, ValueError, TimeoutError,
            subprocess.SubprocessError)


def _fail(error: Exception) -> typer.Exit:
    err.print(f"[red]lab:[/red] {error}", highlight=False)
    return typer.Exit(1)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise _fail(LabError("the lab needs root (network namespaces)"))


def _load(name: str, directory: Path | None) -> Lab:
    _require_root()
    try:
        return Lab.load(name, directory)
    except FAILURES as error:
        raise _fail(error) from None


@app.command()
def up(nodes: Annotated[int, typer.Option("--nodes", min=0, help="Node hosts.")] = 1,
       wan_delay: Annotated[str | None, typer.Option(
           "--wan-delay", help="Delay per direction on each access link, e.g. 40ms.")] = None,
       wan_loss: Annotated[str | None, typer.Option(
           "--wan-loss", help="Loss per direction on each access link, e.g. 0.5%.")] = None,
       overlay: Annotated[str | None, typer.Option(
           "--overlay", help="wireguard (default), openvpn, or none (the default, and the "
           "only one, with several controllers).")] = None,
       join: Annotated[bool, typer.Option("--join/--no-join",
                                          help="Join the nodes by token.")] = True,
       timeout: Annotated[float, typer.Option("--timeout", help="Seconds per wait.")] = 120,
       internet: Annotated[bool, typer.Option(
           "--internet/--no-internet",
           help="An 'internet' segment for the external network (floating IPs).")] = True,
       bare: Annotated[bool, typer.Option(
           "--bare", help="No flavors and no guest image (atwill up's m1.* and "
           "atwill-guest are made otherwise).")] = False,
       clouds: Annotated[int, typer.Option(
           "--clouds", min=1, max=2, help="2: two independent clouds paired as peers "
           "(CloudOne, CloudTwo; labs NAME1, NAME2), N nodes each, joined only by a link "
           "between their WANs (lab partition-clouds / heal-clouds).")] = 1,
       controllers: Annotated[int, typer.Option(
           "--controllers", min=1, max=7, help="Controller hosts (ctl, ctl2, ...): the "
           "first initialises the cloud, the others are added from its bundle; they need "
           "--database postgresql (docs/controllers.md).")] = 1,
       database: Annotated[str, typer.Option(
           "--database", help="sqlite (in the controller's state directory) or postgresql "
           "(in a host of its own, pg, from Debian's package).")] = "sqlite",
       name: Name = "lab", directory: Dir = None) -> None:
    """Build the lab: WAN, controller host(s), N node hosts that join by token.

    The cloud gets what 'atwill up' gives: flavors m1.tiny…m1.large, the image
    atwill-guest, the networks public and private, and router1.
    """
    _require_root()
    if clouds == 2:
        _up_clouds(name, directory, nodes, wan_delay=wan_delay, wan_loss=wan_loss,
                   overlay=overlay or "wireguard", join=join, internet=internet, bare=bare)
        return
    try:
        lab = Lab(name, directory)
        lab.up(nodes, wan_delay=wan_delay, wan_loss=wan_loss, overlay=overlay, join=join,
               timeout=timeout, internet=internet, bare=bare, controllers=controllers,
               database=database)
    except FAILURES as error:
        raise _fail(error) from None
    urls = ", ".join(lab.controller_url_of(h.name) for h in lab.state.controllers())
    cloud = f" (the cloud's name {lab.state.cloud_host})" if lab.state.cloud_host else ""
    console.print(f"lab {lab.name} is up: controller {urls}{cloud}, database "
                  f"{lab.state.database}, nodes {', '.join(lab.node_names()) or '(none)'}",
                  highlight=False)
    console.print(f"try: atwill lab exec ctl --name {lab.name} -- env OS_CLIENT_CONFIG_FILE="
                  f"{lab.state.controller.state_dir}/clouds.yaml "
                  "openstack --os-cloud atwill hypervisor list", highlight=False)


@app.command()
def down(name: Name = "lab", directory: Dir = None) -> None:
    """Remove everything the lab created (processes, namespaces, directory), only that."""
    _require_root()
    lab = Lab(name, directory)
    try:
        lab.down()
    except FAILURES as error:
        raise _fail(error) from None
    console.print(f"lab {lab.name} is down")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False,
           name: Name = "lab", directory: Dir = None) -> None:
    """Hosts, namespaces, addresses, processes (alive?) and node states."""
    info = _load(name, directory).status()
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(f"lab {info['name']}  {info['directory']}  WAN {info['subnet']}  "
                  f"overlay {info['overlay']}  controller {info['controller_url']}  "
                  f"database {info['database']}"
                  + (f"  cloud {info['cloud_host']}" if info["cloud_host"] else ""),
                  highlight=False)
    nodes = {n["name"]: n for n in info.get("nodes", [])}
    for host, h in info["hosts"].items():
        procs = " ".join(f"{role}={p['pid']}({'alive' if p['alive'] else 'dead'})"
                         for role, p in h["processes"].items()) or "-"
        node = nodes.get(host, {})
        console.print(f"  {host:<12} {h['namespace']:<18} {h['address']:<18} "
                      f"{'PARTITIONED ' if h['partitioned'] else ''}{procs}  "
                      f"{node.get('state', '')}", highlight=False)
    if "nodes_error" in info:
        console.print(f"  (node list failed: {info['nodes_error']})", highlight=False)


def _act(name: str, directory: Path | None, action: str, *args: object, **kw: object) -> Lab:
    lab = _load(name, directory)
    try:
        getattr(lab, action)(*args, **kw)
    except FAILURES as error:
        raise _fail(error) from None
    return lab


@app.command("add-node")
def add_node(node: Annotated[str | None, typer.Option("--node", help="Host name.")] = None,
             name: Name = "lab", directory: Dir = None) -> None:
    """Add a node host and join it by token."""
    lab = _load(name, directory)
    try:
        added = lab.add_node(node)
    except FAILURES as error:
        raise _fail(error) from None
    console.print(f"{added} joined ({lab.host(added).address})", highlight=False)


@app.command("remove-node")
def remove_node(host: HostArg, force: Annotated[bool, typer.Option("--force")] = False,
                keep_host: Annotated[bool, typer.Option(
                    "--keep-host", help="Keep the host (namespace, state) after removal.")
                ] = False, name: Name = "lab", directory: Dir = None) -> None:
    """Remove a node from the cloud, then delete its host (unless --keep-host)."""
    lab = _act(name, directory, "remove_node", host, force=force)
    if not keep_host:
        try:
            lab.destroy_host(host)
        except FAILURES as error:
            raise _fail(error) from None
    console.print(f"{host} removed", highlight=False)


@app.command("kill-node")
def kill_node(host: HostArg, name: Name = "lab", directory: Dir = None) -> None:
    """Hard power-off: every process of that host killed at once."""
    _act(name, directory, "kill_node", host)
    console.print(f"{host} killed", highlight=False)


@app.command("start-node")
def start_node(host: HostArg, name: Name = "lab", directory: Dir = None) -> None:
    """Boot a killed node again: start its agent."""
    _act(name, directory, "start_node", host)
    console.print(f"{host} started", highlight=False)


@app.command("kill-controller")
def kill_controller(host: Annotated[str, typer.Argument(help="ctl, ctl2, ...")] = "ctl",
                    name: Name = "lab", directory: Dir = None) -> None:
    """SIGKILL a controller process (a crash), by the PID the lab started."""
    _act(name, directory, "kill_controller", host)
    console.print(f"the controller of {host} killed", highlight=False)


@app.command("start-controller")
def start_controller(host: Annotated[str, typer.Argument(help="ctl, ctl2, ...")] = "ctl",
                     name: Name = "lab", directory: Dir = None) -> None:
    """Start a controller process again and wait until it answers."""
    _act(name, directory, "start_controller", 120, host)  # timeout, host
    console.print(f"the controller of {host} answers", highlight=False)


@app.command()
def partition(host: HostArg, name: Name = "lab", directory: Dir = None) -> None:
    """Cut a host's WAN link."""
    _act(name, directory, "partition", host)
    console.print(f"{host} partitioned", highlight=False)


@app.command()
def heal(host: HostArg, name: Name = "lab", directory: Dir = None) -> None:
    """Restore a host's WAN link."""
    _act(name, directory, "heal", host)
    console.print(f"{host} healed", highlight=False)


@app.command("exec", context_settings={"allow_extra_args": True,
                                       "ignore_unknown_options": True})
def exec_(host: HostArg, command: Annotated[list[str], typer.Argument(
              help="The command, after --.")],
          name: Name = "lab", directory: Dir = None) -> None:
    """Run a command in a host's namespace: atwill lab exec HOST -- CMD..."""
    lab = _load(name, directory)
    try:
        ns = lab.namespace(host)
    except FAILURES as error:
        raise _fail(error) from None
    raise typer.Exit(subprocess.call(ns.argv(command)))


# Two clouds (issue 16) ---------------------------------------------------------------
def _up_clouds(name: str, directory: Path | None, nodes: int, **options: Any) -> None:
    pair = Clouds(name, directory)
    try:
        pair.up((nodes, nodes), **options)
    except FAILURES as error:
        raise _fail(error) from None
    console.print(f"clouds are up: CloudOne lab {pair.one.name} at {pair.one.url}, CloudTwo "
                  f"lab {pair.two.name} at {pair.two.url}; CloudOne has CloudTwo as a peer "
                  "(map users with 'atwill peer map' on each)", highlight=False)


def _clouds(name: str, directory: Path | None) -> Clouds:
    _require_root()
    try:
        return Clouds.load(name, directory)
    except FAILURES as error:
        raise _fail(error) from None


@app.command("partition-clouds")
def partition_clouds(name: Name = "lab", directory: Dir = None) -> None:
    """Cut the link between the two clouds of 'lab up --clouds 2'."""
    _clouds(name, directory).partition()
    console.print("the clouds are cut apart", highlight=False)


@app.command("heal-clouds")
def heal_clouds(name: Name = "lab", directory: Dir = None) -> None:
    """Restore the link between the two clouds."""
    _clouds(name, directory).heal()
    console.print("the clouds are joined again", highlight=False)


@app.command("down-clouds")
def down_clouds(name: Name = "lab", directory: Dir = None) -> None:
    """Take both clouds of 'lab up --clouds 2' down (everything they made, only that)."""
    _require_root()
    try:
        Clouds(name, directory).down()
    except FAILURES as error:
        raise _fail(error) from None
    console.print("both clouds are down", highlight=False)
