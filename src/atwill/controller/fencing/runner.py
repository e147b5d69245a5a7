"""Running one fence agent as Pacemaker's stonith does: options as key=value lines on stdin.

Agents come from Debian's fence-agents package (/usr/sbin/fence_*). Exit status
0 is success; for `status`, 0 means on and 2 means off, both a working device.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

from ...core import fence_options

AGENT_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
# Tests point this at a directory of stand-in agents; a deployment never sets it.
AGENT_DIR_ENV = "ATWILL_FENCE_AGENT_DIR"
STATUS_OFF = 2
MAX_MESSAGE = 600


@dataclasses.dataclass(frozen=True)
class Outcome:
    ok: bool
    power: str | None  # on | off for a status run that answered
    message: str


def agent_path(agent: str) -> Path | None:
    """Where the agent's executable is, or None."""
    fence_options.check_agent(agent)
    dirs = [os.environ[AGENT_DIR_ENV]] if os.environ.get(AGENT_DIR_ENV) else list(AGENT_DIRS)
    found = shutil.which(agent, path=os.pathsep.join(dirs))
    return Path(found) if found else None


def run(agent: str, options: dict[str, str], secret_values: list[str], action: str,
        node: str, timeout: float) -> Outcome:
    """One run of `agent` with `action` against `node`; never raises, never shows a secret."""
    path = agent_path(agent)
    if path is None:
        return Outcome(False, None, f"{agent} is not installed (apt-get install fence-agents)")
    stdin = fence_options.agent_stdin(options, action, node)
    try:
        proc = subprocess.run([str(path)], input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=_env(), check=False)
    except subprocess.TimeoutExpired:
        return Outcome(False, None, f"{agent} {action} timed out after {timeout:g} s")
    except OSError as error:
        return Outcome(False, None, f"{agent} could not start: {error.strerror}")
    text = fence_options.redact(_summary(proc.stdout, proc.stderr), secret_values)
    if action == "status" and proc.returncode in (0, STATUS_OFF):
        power = "on" if proc.returncode == 0 else "off"
        return Outcome(True, power, text or f"power is {power}")
    if proc.returncode == 0:
        return Outcome(True, None, text or f"{action}: success")
    return Outcome(False, None, f"{agent} {action} failed (exit {proc.returncode})"
                   + (f": {text}" if text else ""))


def _env() -> dict[str, str]:
    # No proxies or locale surprises from the controller's environment; agents find
    # ipmitool and friends on the usual PATH.
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _summary(stdout: str, stderr: str) -> str:
    """The agent's own words, without Python's noise, cut to a readable length."""
    lines = [line.strip() for line in (stdout + "\n" + stderr).splitlines()]
    kept = [line for line in lines if line and "DeprecationWarning" not in line
            and not line.startswith("from pipes import")]
    text = "; ".join(kept)
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "…"
