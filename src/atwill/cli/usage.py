"""atwill usage: the server lifecycle event log, exported for billing."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import typer

from .ops import controller
from .options import StateDir, console, err

app = typer.Typer(no_args_is_help=True, help="Usage records for billing.")
PAGE = 500


def last_id(path: Path) -> int:
    """The id of the last event already in a JSON lines file (0 if none)."""
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    try:
        return int(json.loads(lines[-1])["id"]) if lines else 0
    except (ValueError, KeyError, TypeError):
        raise typer.BadParameter(f"{path} does not end with a usage event line; export "
                                 "to a new file or one this command wrote") from None


@app.command("events")
def events(since: int = typer.Option(None, min=0, help="Only events after this id."),
           project: str = typer.Option(None, help="Only this project's servers."),
           instance: str = typer.Option(None, help="Only this server's events."),
           output: Path = typer.Option(  # noqa: B008
               None, help="Append to this JSON lines file, after the last event it holds."),
           webhook: str = typer.Option(
               None, help="POST each page as {'events': [...]} to this URL."),
           state_dir: StateDir = None) -> None:
    """Export the lifecycle events (create, state, resize, move, delete) as JSON lines."""
    from ..controller.cluster.usage_events import page

    start = since if since is not None else (last_id(output) if output else 0)
    sent = 0
    with controller(state_dir) as ctl:
        while True:
            with ctl.db.session() as session:
                batch = page(session, start, PAGE, project, instance)
            if not batch:
                break
            _deliver(batch, output, webhook)
            sent, start = sent + len(batch), batch[-1]["id"]
    if output or webhook:
        console.print(f"{sent} event(s) exported; the next export starts after id {start}",
                      highlight=False)


def _deliver(batch: list[dict], output: Path | None, webhook: str | None) -> None:
    lines = "".join(json.dumps(event, sort_keys=True) + "\n" for event in batch)
    if webhook:
        try:
            httpx.post(webhook, json={"events": batch}, timeout=30).raise_for_status()
        except httpx.HTTPError as error:
            err.print(f"[red]the webhook {webhook} refused or failed: {error}; nothing "
                      f"after id {batch[0]['id'] - 1} was delivered[/red]", highlight=False)
            raise typer.Exit(1) from None
    if output:
        with output.open("a") as out:
            out.write(lines)
    if not output and not webhook:
        typer.echo(lines, nl=False)
