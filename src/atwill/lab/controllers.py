"""Several controllers of one lab cloud, on PostgreSQL in its own host (docs/controllers.md).

`lab up --controllers N --database postgresql`: PostgreSQL starts in the host pg
(database.py); ctl is initialised on it with the cloud's name as its public host (the
catalog and clouds.yaml name it; every lab host resolves it to every controller, as a
DNS name with one address per controller would: openstacksdk and the agents try the
next address when one refuses); ctl2... are added from ctl's bundle, as an operator
would on another machine (`atwill controller export-bundle` / `add`). Nodes join by the
cloud's name and learn every controller's URL from their desired state. On the WireGuard
overlay each controller is a peer of its own (its own key; `controller add` claims it a
free controller address of the overlay), and nodes fail over between the controllers'
overlay URLs first.

The controllers share the image directory (ctl2's images/ is a link to ctl's): the
shared storage docs/controllers.md asks for, standing in for an NFS mount.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from . import commands, database, hosts, naming, processes
from .cluster import LabError
from .revert import Reverter

if TYPE_CHECKING:
    from .lab import Lab

DATABASES = ("sqlite", "postgresql")


def check(controllers: int, database_kind: str, overlay: str) -> None:
    """Refuse what several controllers cannot do, before anything is made."""
    if database_kind not in DATABASES:
        raise LabError(f"--database {database_kind!r}: expected one of {', '.join(DATABASES)}")
    naming.controller_name(controllers)  # the range
    if controllers > 1 and database_kind != "postgresql":
        raise LabError("several controllers share one PostgreSQL database: add "
                       "--database postgresql")
    if controllers > 1 and overlay == "openvpn":
        raise LabError("several controllers cannot share the openvpn overlay (it knows "
                       "one controller, docs/controllers.md): use --overlay wireguard "
                       "or none")


def controller_url(host_ip: str) -> str:
    return f"https://{host_ip}:{commands.CONTROLLER_PORT}"


def up_database(lab: Lab, revert: Reverter, timeout: float) -> None:
    """The pg host, PostgreSQL initialised and started in it, and the cloud's database."""
    state = lab.state
    host = hosts.new_host(state, naming.DATABASE, "database", naming.DATABASE_OCTET,
                          lab.wan_delay, lab.wan_loss)
    hosts.create_host(state, host, revert)
    ns = hosts.namespace(host)
    password = database.prepare(ns, host.state_dir, state.subnet)
    proc = database.start(ns, host.state_dir, host.ip)
    host.processes["postgres"] = proc
    state.save()
    revert.add(lambda: database.stop(proc))  # before its host goes: a clean shutdown

    def ready() -> bool:
        if not processes.alive(proc):
            raise LabError(f"PostgreSQL exited; {proc.log}:\n"
                           f"{Path(proc.log).read_text(errors='replace')[-2000:]}")
        return database.ready(ns, host.state_dir)

    lab.wait_for(ready, timeout, "PostgreSQL to accept connections")
    database.create_database(ns, host.state_dir)
    state.database_url = database.url(host.ip, password)
    state.save()


def planned_urls(lab_name: str, controllers: int) -> str:
    """Every controller's own URL, for controller_urls on the first (comma-separated)."""
    return ",".join(controller_url(naming.address(lab_name, naming.controller_octet(i))
                                   .split("/")[0]) for i in range(1, controllers + 1))


def set_controller_urls(state_dir: str, urls: str) -> None:
    """controller_urls in the first controller's atwill.yaml, before it starts (and before
    its bundle is made: the others get it from there); and its own address (the first
    URL's, planned_urls) as the WireGuard endpoint nodes dial: its public host, the
    cloud's name, names every controller, and a node's WireGuard would dial whichever
    address comes first."""
    path = Path(state_dir) / "atwill.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    data["controller_urls"] = urls
    data["overlay_endpoint"] = urlsplit(urls.split(",")[0]).hostname
    path.write_text(yaml.safe_dump(data, sort_keys=True))


def add_controller(lab: Lab, index: int, revert: Reverter, timeout: float) -> str:
    """Controller host `index` (ctl2, ...), made from ctl's bundle and started."""
    state = lab.state
    first = state.controller
    name = naming.controller_name(index)
    host = hosts.new_host(state, name, "controller", naming.controller_octet(index),
                          lab.wan_delay, lab.wan_loss)
    hosts.create_host(state, host, revert)
    secret = Path(state.directory) / "bundle-passphrase"
    bundle = Path(state.directory) / f"{name}.bundle"
    secret.unlink(missing_ok=True)
    with os.fdopen(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(secrets.token_urlsafe(24))  # never readable by others, even briefly
    try:
        commands.run_in(hosts.namespace(first),
                        commands.export_bundle(first.state_dir, str(bundle), str(secret)))
        commands.run_in(hosts.namespace(host), commands.add_controller(
            host.state_dir, str(bundle), str(secret), host.ip), timeout=120)
    finally:
        bundle.unlink(missing_ok=True)  # it holds the cloud's keys
        secret.unlink(missing_ok=True)
    share_images(first.state_dir, host.state_dir)
    lab.start_controller(timeout, name)
    return name


def share_images(first: str, other: str) -> None:
    """other/images is a link to first/images: the same image files behind each."""
    source, link = Path(first) / "images", Path(other) / "images"
    source.mkdir(mode=0o700, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        link.rmdir()  # made empty by `add`; a non-empty one fails here, loudly
    link.symlink_to(source)
