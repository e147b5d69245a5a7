"""atwill config: show the effective configuration."""

from __future__ import annotations

import json

import typer

from .options import StateDir, console, settings

app = typer.Typer(no_args_is_help=True, help="Inspect the configuration.")


@app.command("show")
def show(state_dir: StateDir = None,
         as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective values (file, then ATWILL_* environment, then flags)."""
    values = settings(state_dir).as_dict()
    if as_json:
        console.print_json(json.dumps(values))
        return
    for key, value in values.items():
        console.print(f"{key} = {value}", highlight=False)
