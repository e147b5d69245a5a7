"""Shared by operator commands that act on the controller's database directly."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from ..core.errors import ApiError
from .options import console, err, settings

if TYPE_CHECKING:
    from ..controller.context import Controller


@contextlib.contextmanager
def controller(state_dir: Path | None) -> Iterator[Controller]:
    """The controller's database, for operator commands run on the controller host."""
    conf = settings(state_dir)
    if not conf.path("pki", "ca.pem").exists():
        err.print(f"[red]{conf.state_dir} is not an initialised controller; run 'atwill "
                  "init'.[/red]")
        raise typer.Exit(1)
    from ..controller.context import Controller  # heavy: only when a command needs it

    ctl = Controller.from_settings(conf)
    try:
        yield ctl
    except ApiError as error:
        err.print(f"[red]{error.message}[/red]")
        raise typer.Exit(1) from None
    finally:
        ctl.db.dispose()


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))
