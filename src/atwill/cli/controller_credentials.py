"""atwill controller credentials: rewrite clouds.yaml and openrc with every controller of
the cloud known now (docs/controllers.md, "The catalog and clouds.yaml"): a controller
added after this one's init, or `public_endpoint` set later, without `atwill init`
(refused on an added controller)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from .options import StateDir, console, err, settings


def credentials(state_dir: StateDir = None) -> None:
    """Rewrite clouds.yaml and openrc: the cloud 'atwill' and one cloud per controller."""
    import typer

    from ..controller.state import refresh_credentials

    conf = settings(state_dir)
    try:
        changes, registered = refresh_credentials(conf)
    except (SQLAlchemyError, FileNotFoundError) as error:
        err.print(f"[red]cannot rewrite the credentials:[/red] {str(error).splitlines()[0]}",
                  highlight=False)
        raise typer.Exit(1) from None
    for change in changes or [f"{conf.path('clouds.yaml')} is up to date; nothing changed."]:
        console.print(f"  {change}", highlight=False)
    console.print(f"Controllers live in the database: {', '.join(registered) or 'none'}.",
                  highlight=False)
