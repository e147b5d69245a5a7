"""How the atwill command fails: one line on stderr and exit 1, never a traceback.

Every sub-command runs inside `Group.invoke`, so this is the one place that turns the
failures a user can cause or meet (a controller that is down, a refused request, bad
input, a failed host command) into `atwill: <message>`. Anything else is a bug: its
trace goes to a file (or to the terminal with --debug or ATWILL_DEBUG=1).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import traceback

import httpx
import typer
from typer.core import TyperGroup

from ..core.errors import ApiError

DEBUG_ENV = "ATWILL_DEBUG"


def _known() -> tuple[type[BaseException], ...]:
    """The failures a user can meet; imported lazily, as `atwill join` needs no controller."""
    from atwill.hostlib.run import HostCommandError

    from ..agent.client import ClusterError
    from ..agent.join import JoinError
    from ..lab.cluster import LabError
    from ..lab.commands import CommandError
    from ..lab.netns import NetError

    return (httpx.HTTPError, OSError, subprocess.SubprocessError, ValueError, ApiError,
            ClusterError, JoinError, LabError, CommandError, NetError, HostCommandError)


def describe(error: BaseException) -> str:
    """One line that says what failed, without Python's vocabulary."""
    if isinstance(error, httpx.TransportError):
        try:
            where = f" {error.request.url.scheme}://{error.request.url.netloc.decode()}"
        except RuntimeError:  # an error raised before any request was made
            where = ""
        return f"cannot reach{where}: {error or type(error).__name__}"
    if isinstance(error, subprocess.CalledProcessError):
        detail = error.stderr or error.output or ""
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        last = detail.strip().splitlines()[-1:] or [""]
        return f"{error}{' ' + last[0] if last[0] else ''}"
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.filename}: {error.strerror}"
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(message).strip()


def debugging(ctx: typer.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _write_trace(error: BaseException) -> str | None:
    """Keep the full trace of a bug for its report; None if even that is impossible."""
    try:
        fd, path = tempfile.mkstemp(prefix=f"atwill-crash-{time.strftime('%Y%m%d-%H%M%S')}-",
                                    suffix=".txt")
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(traceback.format_exception(error)))
        return path
    except OSError:
        return None


class Group(TyperGroup):
    """The top-level group: every sub-command's failures pass through `invoke`."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: usage errors, typer.Exit, Ctrl-C already say what happened
        except _known() as error:
            if debugging(ctx):
                raise
            typer.echo(f"atwill: {describe(error)}", err=True)
            raise typer.Exit(1) from None
        except Exception as error:
            if debugging(ctx):
                raise
            path = _write_trace(error)
            where = f"; full trace in {path}" if path else ""
            typer.echo(f"atwill: unexpected error: {type(error).__name__}: {describe(error)}"
                       f"{where} (--debug shows it)", err=True)
            raise typer.Exit(1) from None
