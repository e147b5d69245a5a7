"""atwill keys: rotate the Fernet token keys."""

from __future__ import annotations

import typer

from ..config import Settings
from .options import StateDir, console, err, settings

app = typer.Typer(no_args_is_help=True, help="Token keys.")


@app.command("rotate")
def rotate(state_dir: StateDir = None) -> None:
    """Promote the staged key to primary and stage a new one; old tokens stay valid.

    The keys are in the database: this rotates them for every controller sharing it."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..controller.context import Controller
    from ..controller.keys import RECHECK

    ctl = Controller.from_settings(settings(state_dir))
    try:
        shared = ctl.keys.shared()
        primary = ctl.keys.rotate()
    except (RuntimeError, ValueError, OSError, SQLAlchemyError) as error:
        err.print(f"[red]{error}[/red]", highlight=False)
        raise typer.Exit(1) from None
    finally:
        ctl.db.dispose()
    console.print(f"rotated: key {primary} is now primary")
    if shared:
        console.print(f"(in the database: every controller encrypts with it within {RECHECK:g} s)",
                      highlight=False)


def prepare(conf: Settings) -> None:
    """Before serving: the token keys loaded (imported into the database at the first
    start); a clear message and exit 1 when they cannot be (e.g. another CA key)."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..controller.context import Controller

    ctl = Controller.from_settings(conf)
    try:
        ctl.keys.prepare()
    except (RuntimeError, ValueError, OSError, SQLAlchemyError) as error:
        err.print(f"[red]token keys: {str(error).splitlines()[0]}[/red]", highlight=False)
        raise typer.Exit(1) from None
    finally:
        ctl.db.dispose()
