"""atwill bench: benchmarks (see benchmarks/)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Benchmarks.")


@app.command("api")
def api(rounds: int = typer.Option(2000, help="Requests per measurement."),
        image_mb: int = typer.Option(256, help="Size of the image to move.")) -> None:
    """Token issue/validation rates, image transfer ratio, flavor list rate, memory."""
    from ..bench.api import main

    main(rounds, image_mb)
