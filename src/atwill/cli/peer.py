"""atwill peer: pair with other atwill clouds, map their users, list and forget them."""

from __future__ import annotations

import typer
from rich.table import Table

from .ops import controller, print_json
from .options import StateDir, console
from .token import parse_duration

app = typer.Typer(no_args_is_help=True, help="Peer clouds (X-Scope collaboration).")
tokens_app = typer.Typer(no_args_is_help=True, help="One-time peer tokens.")
app.add_typer(tokens_app, name="token")


@tokens_app.command("create")
def token_create(name: str = typer.Option(..., "--name",
                                          help="What the cloud that pairs is called here."),
                 ttl: str = typer.Option("1h", help="Lifetime: 90s, 15m, 1h, 2d."),
                 as_json: bool = typer.Option(False, "--json"),
                 state_dir: StateDir = None) -> None:
    """Create a one-time peer token and print the command the other cloud runs."""
    from ..controller.peers import registry
    from ..controller.peers.routes import pairing_details

    with controller(state_dir) as ctl, ctl.db.session() as session:
        secret, token = registry.create_token(session, name, parse_duration(ttl))
        view = {**registry.token_view(token), **pairing_details(ctl.settings, secret)}
    if as_json:
        print_json(view)
        return
    console.print(f"peer token for {name}, valid until {view['expires_at']}. On the other "
                  "cloud's controller, run (NAME: what this cloud is called there):",
                  highlight=False)
    console.print(view["command"], highlight=False, soft_wrap=True)


@app.command("add")
def add(name: str = typer.Argument(..., help="What the peer is called here (in X-Scope)."),
        url: str = typer.Argument(..., help="The peer's https:// URL."),
        ca_hash: str = typer.Option(..., "--ca-hash", help="sha256:… of the peer's CA."),
        token: str = typer.Option(..., "--token", help="A peer token made by the peer."),
        as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """Pair with a peer cloud: pin its CA, present its token, exchange credentials."""
    from ..controller.peers import registry

    with controller(state_dir) as ctl, ctl.db.session() as session:
        view = registry.to_view(registry.pair(session, ctl.settings, name, url, ca_hash,
                                              token))
    if as_json:
        print_json(view)
        return
    console.print(f"paired with {name} at {view['url']}; map its users with 'atwill peer "
                  "map'.", highlight=False)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """List peer clouds."""
    from ..controller.peers import registry

    with controller(state_dir) as ctl, ctl.db.session() as session:
        views = [registry.to_view(p) for p in registry.listing(session)]
    if as_json:
        print_json(views)
        return
    table = Table("name", "url", "ca_hash", "services")
    for v in views:
        table.add_row(v["name"], v["url"], v["ca_hash"][:23] + "…", ", ".join(v["services"]))
    console.print(table)


@app.command("show")
def show(name: str, as_json: bool = typer.Option(False, "--json"),
         state_dir: StateDir = None) -> None:
    """Show a peer cloud and its mappings."""
    from ..controller.peers import registry, trust

    with controller(state_dir) as ctl, ctl.db.session() as session:
        peer = registry.find(session, name)
        view = {**registry.to_view(peer),
                "mappings": [trust.mapping_view(m) for m in trust.mappings(session, peer)]}
    if as_json:
        print_json(view)
        return
    for key in ("name", "url", "ca_hash", "services", "created_at"):
        console.print(f"{key}: {view[key]}", highlight=False)
    for m in view["mappings"]:
        console.print(f"map {m['id'][:8]}: {m['remote_user']}@{m['remote_user_domain']} in "
                      f"{m['remote_project']}@{m['remote_domain']} -> "
                      f"{m['role']} on {m['local_project_id']}", highlight=False)


@app.command("set")
def set_(name: str, url: str = typer.Option(..., "--url", help="The peer's new URL."),
         state_dir: StateDir = None) -> None:
    """Change where a peer is reached (same CA, same credentials)."""
    from ..controller.peers import registry

    if not url.startswith("https://"):
        raise typer.BadParameter("a peer's URL must be https://")
    with controller(state_dir) as ctl, ctl.db.session() as session:
        registry.find(session, name).url = url.rstrip("/")


@app.command("remove")
def remove(name: str, state_dir: StateDir = None) -> None:
    """Forget a peer cloud: its users and its images are no longer accepted here."""
    from ..controller.peers import registry

    with controller(state_dir) as ctl, ctl.db.session() as session:
        session.delete(registry.find(session, name))


@app.command("map")
def map_(name: str,
         remote_project: str = typer.Option(..., "--remote-project",
                                            help="The project at the peer (name or id)."),
         remote_user: str = typer.Option("*", "--remote-user",
                                         help="A user of it (name or id), or * for any."),
         remote_domain: str = typer.Option(
             "Default", "--remote-domain",
             help="The peer's domain (name or id) the remote project's name is in."),
         remote_user_domain: str | None = typer.Option(
             None, "--remote-user-domain",
             help="The peer's domain of the remote user's name (default: --remote-domain)."),
         local_project: str = typer.Option(..., "--local-project",
                                           help="The project here (name or id)."),
         role: str = typer.Option("member", "--role", help="The role they have here."),
         as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """Let a peer's users act here, in one local project with one role."""
    from ..controller.peers import registry, trust

    with controller(state_dir) as ctl, ctl.db.session() as session:
        view = trust.mapping_view(trust.add_mapping(
            session, registry.find(session, name), remote_project, remote_user,
            local_project, role, remote_domain, remote_user_domain))
    if as_json:
        print_json(view)
        return
    console.print(f"mapping {view['id'][:8]} added", highlight=False)


@app.command("unmap")
def unmap(name: str, mapping_id: str, state_dir: StateDir = None) -> None:
    """Remove a mapping (by the id 'peer show' prints, or a unique prefix)."""
    from ..controller.peers import registry, trust
    from ..core.errors import NotFound

    with controller(state_dir) as ctl, ctl.db.session() as session:
        found = [m for m in trust.mappings(session, registry.find(session, name))
                 if m.id.startswith(mapping_id)]
        if len(found) != 1:
            raise NotFound(f"No single mapping {mapping_id} of peer {name}.")
        session.delete(found[0])
