"""The lab's side of the WAN emulator (wanemu.py): its settings file, start, reload, stop.

The settings are the hosts' delay and loss as recorded in lab.json; every
change is written with a new generation and signalled with SIGHUP, then
awaited in the emulator's status file, so when a call returns the change is live.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from . import commands, processes
from .netns import Namespace, NetError
from .state import LabState
from .wanswitch import QUEUE_LIMIT, Link

CONFIG = "wanemu.json"
STATUS = "wanemu-status.json"
LOG = "wanemu.log"
READY_TIMEOUT = 15


class EmulatorError(NetError):
    """The WAN emulator did not start or did not take its settings; the message says why."""


def _path(state: LabState, name: str) -> Path:
    return Path(state.directory) / name


def links(state: LabState) -> dict[str, Link]:
    """Each host's WAN-side veth with its delay and loss (ValueError if one is malformed)."""
    return {h.wan_veth: Link.parse(h.delay, h.loss) for h in state.hosts.values()}


def status(state: LabState) -> dict[str, Any] | None:
    """The emulator's last report (ports, settings, counters), or None before the first."""
    try:
        return json.loads(_path(state, STATUS).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def running(state: LabState) -> bool:
    return state.wan_emulator is not None and processes.alive(state.wan_emulator)


def _write_config(state: LabState) -> int:
    """Write the settings with the next generation; return that generation."""
    previous = 0
    try:
        previous = json.loads(_path(state, CONFIG).read_text()).get("generation", 0)
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    ports = {port: {"delay": link.delay, "loss": link.loss}
             for port, link in links(state).items()}
    data = {"generation": previous + 1, "limit": QUEUE_LIMIT, "ports": ports}
    tmp = _path(state, CONFIG + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, _path(state, CONFIG))
    return previous + 1


def start(state: LabState) -> None:
    """Start the emulator in the WAN namespace with the current settings; wait until live."""
    if running(state):
        raise EmulatorError(f"the WAN emulator of lab {state.name} already runs")
    generation = _write_config(state)
    argv = [commands.PYTHON, "-m", "atwill.lab.wanemu", str(_path(state, CONFIG)),
            str(_path(state, STATUS))]
    state.wan_emulator = processes.spawn(Namespace(state.wan_namespace), argv,
                                         _path(state, LOG))
    state.save()
    _wait(state, generation)


def configure(state: LabState) -> None:
    """Hand the current settings (and set of hosts) to the running emulator; wait until live."""
    generation = _write_config(state)
    if state.wan_emulator is None or not processes.signal_process(state.wan_emulator,
                                                                  signal.SIGHUP):
        raise EmulatorError(f"the WAN emulator of lab {state.name} is not running; "
                            f"see {_path(state, LOG)}")
    _wait(state, generation)


def stop(state: LabState) -> None:
    """Stop the emulator (the hosts are cut off from each other until it runs again)."""
    if state.wan_emulator is not None:
        processes.stop(state.wan_emulator, timeout=5)
        state.wan_emulator = None
        state.save()


def _wait(state: LabState, generation: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        report = status(state)
        if report and report.get("generation", 0) >= generation:
            failed = {p: v["error"] for p, v in report["ports"].items() if not v["open"]}
            if failed:
                raise EmulatorError(f"the WAN emulator cannot open {failed}")
            return
        if state.wan_emulator is None or not processes.alive(state.wan_emulator):
            log = _path(state, LOG)
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
            raise EmulatorError(f"the WAN emulator exited; {log}:\n{tail}")
        time.sleep(0.02)
    raise EmulatorError(f"the WAN emulator did not take settings generation {generation} "
                        f"within {READY_TIMEOUT}s")
