"""atwill token: join tokens (create, list, delete)."""

from __future__ import annotations

import typer
from rich.table import Table

from .ops import controller, print_json
from .options import StateDir, console

app = typer.Typer(no_args_is_help=True, help="Join tokens for new compute nodes.")


def parse_duration(text: str) -> int:
    """'90', '90s', '15m', '1h', '2d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 1h or 2d") from None


@app.command("create")
def create(ttl: str = typer.Option("1h", help="Lifetime: 90s, 15m, 1h, 2d."),
           uses: int = typer.Option(1, help="How many joins it allows."),
           description: str = typer.Option("", help="A note shown in 'token list'."),
           aggregate: list[str] = typer.Option(  # noqa: B008
               [], "--aggregate", help="A host aggregate the node joins (repeatable)."),
           as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """Create a join token and print the complete join command."""
    from ..api.cluster import TokenCreate
    from ..controller.cluster import tokens
    from ..controller.cluster.join_command import join_details

    try:
        spec = TokenCreate(ttl=parse_duration(ttl), uses=uses, description=description,
                           aggregates=aggregate)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with controller(state_dir) as ctl, ctl.db.session() as session:
        secret, token = tokens.create(session, spec.ttl, spec.uses, spec.description,
                                      spec.aggregates)
        view = {**tokens.to_view(token), **join_details(ctl.settings, secret)}
    if as_json:
        print_json(view)
        return
    into = f" into aggregate(s) {', '.join(view['aggregates'])}" if view["aggregates"] else ""
    console.print(f"token {view['id'][:8]} valid until {view['expires_at']} for "
                  f"{spec.uses} join(s){into}. On the new node, as root, run:",
                  highlight=False)
    console.print(view["command"], highlight=False, soft_wrap=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), state_dir: StateDir = None) -> None:
    """List join tokens (their secrets are never shown again)."""
    from ..controller.cluster import tokens

    with controller(state_dir) as ctl, ctl.db.session() as session:
        views = [tokens.to_view(t) for t in tokens.listing(session)]
    if as_json:
        print_json(views)
        return
    table = Table("id", "state", "uses", "expires", "aggregates", "description")
    for v in views:
        table.add_row(v["id"][:8], v["state"], f"{v['uses']}/{v['max_uses']}",
                      v["expires_at"], ", ".join(v["aggregates"]), v["description"])
    console.print(table)


@app.command("delete")
def delete(token_id: str = typer.Argument(..., help="Id or id prefix from 'token list'."),
           state_dir: StateDir = None) -> None:
    """Revoke a join token: later joins with it are refused."""
    from ..controller.cluster import tokens

    with controller(state_dir) as ctl, ctl.db.session() as session:
        token = tokens.revoke(session, token_id)
        console.print(f"token {token.id[:8]} revoked")
