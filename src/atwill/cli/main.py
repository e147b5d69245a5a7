"""The atwill command: one sub-command module per noun."""

from __future__ import annotations

import typer

from . import bench, config_cmd, controller_cmd, keys

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="atwill: a cloud whose compute grows and shrinks at will.")
controller_cmd.register(app)
app.add_typer(config_cmd.app, name="config")
app.add_typer(keys.app, name="keys")
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()
