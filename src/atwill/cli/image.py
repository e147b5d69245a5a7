"""atwill image: the guest image (Debian kernel + busybox) that atwill boots and tests use."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from .options import console, err

app = typer.Typer(no_args_is_help=True, help="Guest images.")

Output = Annotated[Path, typer.Option("--output", "-o", help="Where to write the qcow2 image.")]
CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", envvar="ATWILL_CACHE_DIR",
    help="Package and image cache (default /var/cache/atwill as root, else ~/.cache/atwill).")]


@app.callback()
def image() -> None:
    """Guest images."""


@app.command("build")
def build(output: Output = Path("atwill-guest.qcow2"), cache_dir: CacheDir = None) -> None:
    """Build the guest image from Debian packages (cached: fast the second time)."""
    from ..agent.host.run import HostCommandError
    from ..guest.build import build_image

    started = time.monotonic()
    try:
        image = build_image(output, cache_dir, progress=lambda message: err.print(message))
    except (HostCommandError, OSError, ValueError) as error:
        err.print(f"[red]image build failed:[/red] {error}")
        raise typer.Exit(1) from None
    size_mib = image.path.stat().st_size / (1024 * 1024)
    how = "from the cache" if image.cached else "built"
    console.print(f"{image.path} ({size_mib:.1f} MiB, kernel {image.kernel_version}, "
                  f"{how} in {time.monotonic() - started:.1f} s)")
