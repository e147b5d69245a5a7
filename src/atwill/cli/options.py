"""Options shared by the commands that act on a state directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from .. import config

console = Console()
# Messages are never wrapped: one failure, one line, whatever the terminal's width.
err = Console(stderr=True, soft_wrap=True)

StateDir = Annotated[Path | None, typer.Option(
    "--state-dir", envvar="ATWILL_STATE_DIR",
    help="State directory (default /var/lib/atwill).")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", envvar="ATWILL_DATABASE_URL",
    help="SQLAlchemy URL; default SQLite in the state directory (ATWILL_DATABASE_URL keeps "
         "a password off the command line).")]
Host = Annotated[str | None, typer.Option("--host", help="Address to listen on.")]
Port = Annotated[int | None, typer.Option("--port", help="Port to listen on.")]
PublicHost = Annotated[str | None, typer.Option(
    "--public-host", help="Host name or address clients use (catalog and certificate).")]
Insecure = Annotated[bool, typer.Option(
    "--insecure-http", help="Serve plain HTTP instead of HTTPS (explicit opt-in).")]


def settings(state_dir: Path | None, insecure: bool = False, **overrides: Any):
    if insecure:
        overrides["tls"] = False
    try:
        return config.load(state_dir, **overrides)
    except ValueError as error:
        err.print(f"[red]configuration error:[/red] {error}")
        raise typer.Exit(2) from None
Overlay = Annotated[str | None, typer.Option(
    "--overlay", help="Overlay between hosts: wireguard (default), openvpn or none.")]
