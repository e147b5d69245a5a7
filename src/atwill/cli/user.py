"""atwill user: operator actions on identity users, run on the controller host."""

from __future__ import annotations

import typer

from .ops import controller
from .options import StateDir, console, err

app = typer.Typer(no_args_is_help=True, help="Identity users (local operator actions).")


@app.command("unlock")
def unlock(name: str, domain: str = typer.Option(
        "default", "--domain", help="The user's domain, by id or name."),
        state_dir: StateDir = None) -> None:
    """Clear a user's failed password logins, so a locked account can log in again."""
    from sqlalchemy import or_, select

    from ..controller.db.models import Domain, User
    from ..controller.identity import lockout

    with controller(state_dir) as ctl, ctl.db.session() as session:
        found = session.scalar(select(Domain).where(or_(Domain.id == domain,
                                                        Domain.name == domain)))
        user = found and session.scalar(select(User).where(
            User.name == name, User.domain_id == found.id))
        if user is None:
            err.print(f"[red]no user {name!r} in domain {domain!r}[/red]")
            raise typer.Exit(1)
        had = lockout.unlock(session, user)
    console.print(f"unlocked user {name} ({user.id})" if had
                  else f"user {name} ({user.id}) had no failed logins")
