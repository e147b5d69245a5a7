"""atwill keys: rotate the Fernet token keys."""

from __future__ import annotations

import typer

from ..controller.keys import KeyRepository
from .options import StateDir, console, err, settings

app = typer.Typer(no_args_is_help=True, help="Token keys.")


@app.command("rotate")
def rotate(state_dir: StateDir = None) -> None:
    """Promote the staged key to primary and stage a new one; old tokens stay valid."""
    conf = settings(state_dir)
    repo = KeyRepository(conf.path("fernet-keys"), conf.max_active_keys)
    try:
        primary = repo.rotate()
    except RuntimeError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    console.print(f"rotated: key {primary} is now primary")
