"""atwill image: the guest images atwill boots and tests use (small guest, Debian cloud)."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .options import console, err

app = typer.Typer(no_args_is_help=True, help="Guest images.")

Output = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Where to write the qcow2 image (default: <kind>.qcow2).")]
CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", envvar="ATWILL_CACHE_DIR",
    help="Package and image cache (default /var/cache/atwill as root, else ~/.cache/atwill).")]


class Kind(StrEnum):
    """Which image to build."""

    ATWILL_GUEST = "atwill-guest"
    DEBIAN_CLOUD = "debian-cloud"


KindOption = Annotated[Kind, typer.Option(
    "--kind", help="atwill-guest: kernel + busybox, seconds to boot; debian-cloud: Debian 12 "
                   "with systemd and cloud-init (needs root and mmdebstrap).")]


@app.callback()
def image() -> None:
    """Guest images."""


@app.command("build")
def build(output: Output = None, cache_dir: CacheDir = None,
          kind: KindOption = Kind.ATWILL_GUEST) -> None:
    """Build a guest image from Debian packages (cached: fast the second time)."""
    from atwill.hostlib.run import HostCommandError

    from ..guest.build import build_image
    from ..guest.cloud import build_cloud_image

    builder = build_cloud_image if kind is Kind.DEBIAN_CLOUD else build_image
    output = output or Path(f"{kind.value}.qcow2")
    started = time.monotonic()
    try:
        image = builder(output, cache_dir, progress=lambda message: err.print(message))
    except (HostCommandError, OSError, ValueError) as error:
        err.print(f"[red]image build failed:[/red] {error}")
        raise typer.Exit(1) from None
    size_mib = image.path.stat().st_size / (1024 * 1024)
    how = "from the cache" if image.cached else "built"
    console.print(f"{image.path} ({size_mib:.1f} MiB, kernel {image.kernel_version}, "
                  f"{how} in {time.monotonic() - started:.1f} s)")
