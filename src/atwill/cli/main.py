"""The atwill command: one sub-command module per noun."""

from __future__ import annotations

import typer

from . import (
    agent_cmd,
    apply_cmd,
    bench,
    config_cmd,
    controller_cmd,
    down,
    image,
    keys,
    lab,
    node,
    peer,
    token,
    up,
    usage,
    user,
)
from .failures import DEBUG_ENV, Group

app = typer.Typer(cls=Group, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False,
                  help="atwill: a cloud whose compute grows and shrinks at will.")


@app.callback()
def options(debug: bool = typer.Option(
        False, "--debug", envvar=DEBUG_ENV,
        help="Show the full trace of an unexpected error.")) -> None:
    """atwill: a cloud whose compute grows and shrinks at will."""


controller_cmd.register(app)
app.command("up")(up.up)
down.register(app)
agent_cmd.register(app)
apply_cmd.register(app)
app.add_typer(token.app, name="token")
app.add_typer(node.app, name="node")
app.add_typer(lab.app, name="lab")
app.add_typer(image.app, name="image")
app.add_typer(config_cmd.app, name="config")
app.add_typer(keys.app, name="keys")
app.add_typer(bench.app, name="bench")
app.add_typer(user.app, name="user")
app.add_typer(usage.app, name="usage")
app.add_typer(peer.app, name="peer")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
