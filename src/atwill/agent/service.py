"""The systemd unit that runs the node agent at boot (`atwill node install-service`)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

UNIT_NAME = "atwill-agent.service"
UNIT_DIR = Path("/etc/systemd/system")


def atwill_program() -> str:
    """The absolute path of this installation's `atwill` (systemd wants one)."""
    beside = Path(sys.executable).parent / "atwill"
    if beside.exists():
        return str(beside)
    found = shutil.which("atwill")
    return str(Path(found).resolve()) if found else str(beside)


def _quoted(word: str) -> str:
    """One word of a systemd command line (quoted only when it has to be)."""
    if word and not any(c in word for c in ' \t"\'\\$%;'):
        return word
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return '"' + escaped.replace("%", "%%") + '"'


def unit_text(program: str, state_dir: Path, env_file: Path) -> str:
    """The unit: `atwill agent` (autojoining from env_file first), restarted on failure."""
    command = " ".join(_quoted(w) for w in (program, "agent", "--state-dir", str(state_dir),
                                              "--join-config", str(env_file)))
    # KillMode=process: a restart or stop of the agent leaves the VMs, dnsmasq and the
    # overlay running (QEMU is daemonized and re-adopted by the next agent, as docs say);
    # `atwill leave` is what stops them.
    return f"""[Unit]
Description=atwill compute node agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=-{env_file}
ExecStart={command}
Restart=on-failure
RestartSec=10s
KillMode=process

[Install]
WantedBy=multi-user.target
"""


def env_text(values: Mapping[str, str]) -> str:
    """A join.env the agent and systemd both read (values must be single words)."""
    for key, value in values.items():
        if not value or any(c.isspace() or c in "\"'\\" for c in value):
            raise ValueError(f"{key}: {value!r} is not a single word")
    return "".join(f"{key}={value}\n" for key, value in values.items())
