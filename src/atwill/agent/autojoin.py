"""Autojoin: `atwill agent` on a host that has not joined joins by itself, then runs.

The join settings come from the environment (ATWILL_JOIN_URL, ATWILL_JOIN_TOKEN,
ATWILL_JOIN_CA_HASH, optionally ATWILL_JOIN_NAME or ATWILL_NODE_NAME, ATWILL_OVERLAY_PORT
and ATWILL_JOIN_AGGREGATES, host aggregates as `atwill join --aggregate`) or from a
KEY=VALUE file, /etc/atwill/join.env by default (what cloud-init writes and the systemd
unit names); the environment wins. A join that fails
(a wrong or used-up token, the controller not up yet) is logged once per distinct reason
and retried with a growing, capped delay, so a boot-time service never crash-loops.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .config import AgentConfig

log = logging.getLogger("atwill.agent.autojoin")
DEFAULT_CONFIG = Path("/etc/atwill/join.env")
REQUIRED = ("ATWILL_JOIN_URL", "ATWILL_JOIN_TOKEN", "ATWILL_JOIN_CA_HASH")
FIRST_DELAY = 2.0
MAX_DELAY = 300.0


class SettingsError(ValueError):
    """The join settings are incomplete or malformed; the message says which."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (a missing file is empty)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


@dataclasses.dataclass(frozen=True)
class JoinSettings:
    """What a join needs: the controller, a token, the CA pin; the name is optional."""

    url: str
    token: str
    ca_hash: str
    name: str | None = None
    overlay_port: int = 51820
    storage: Path | None = None  # ATWILL_JOIN_STORAGE: a storage node keeps volumes there
    storage_vg: str | None = None  # ATWILL_JOIN_STORAGE_VG: ... or in this LVM thin pool
    aggregates: tuple[str, ...] = ()  # ATWILL_JOIN_AGGREGATES: names, comma-separated

    @classmethod
    def find(cls, environ: Mapping[str, str], path: Path) -> JoinSettings | None:
        """From the environment over the file; None when neither has any join setting."""
        values = {**read_env_file(path), **{k: v for k, v in environ.items() if v}}
        present = [key for key in REQUIRED if values.get(key)]
        if not present:
            return None
        if len(present) < len(REQUIRED):
            missing = ", ".join(key for key in REQUIRED if key not in present)
            raise SettingsError(f"incomplete join settings (environment and {path}): "
                                f"{missing} missing")
        port = values.get("ATWILL_OVERLAY_PORT", "51820")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"ATWILL_OVERLAY_PORT={port!r} is not a port number")
        return cls(url=values["ATWILL_JOIN_URL"], token=values["ATWILL_JOIN_TOKEN"],
                   ca_hash=values["ATWILL_JOIN_CA_HASH"],
                   name=values.get("ATWILL_JOIN_NAME") or values.get("ATWILL_NODE_NAME"),
                   overlay_port=int(port),
                   storage=Path(values["ATWILL_JOIN_STORAGE"])
                   if values.get("ATWILL_JOIN_STORAGE") else None,
                   storage_vg=values.get("ATWILL_JOIN_STORAGE_VG") or None,
                   aggregates=tuple(a.strip() for a in values.get(
                       "ATWILL_JOIN_AGGREGATES", "").split(",") if a.strip()))


def delays(first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> Iterator[float]:
    """first, 2 x first, 4 x first, ... never more than cap."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, cap)


def autojoin(settings: JoinSettings, state_dir: Path,
             join_once: Callable[..., AgentConfig] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> AgentConfig:
    """Join, retrying with backoff until it works; one log line per new failure reason."""
    from .join import JoinError, join  # what a node needs to join: not for every CLI start

    join_once = join_once or join
    said: str | None = None
    for attempt, delay in enumerate(delays(), 1):
        try:
            extra: dict[str, object] = {"storage": settings.storage} if settings.storage else {}
            if settings.storage_vg:
                extra["storage_vg"] = settings.storage_vg
            if settings.aggregates:
                extra["aggregates"] = list(settings.aggregates)
            config = join_once(settings.url, settings.token, settings.ca_hash, state_dir,
                               settings.name, settings.overlay_port, **extra)
        except (JoinError, OSError) as error:
            reason = " ".join(str(error).split())  # one line, whatever the message held
            if reason != said:
                log.warning("autojoin to %s failed: %s (retrying with backoff, every %gs "
                            "at most; fix the settings or make a new token)", settings.url,
                            reason, MAX_DELAY)
                said = reason
            else:
                log.debug("autojoin attempt %d failed again: %s", attempt, reason)
            sleep(delay)
            continue
        log.info("autojoined %s as %s (node %s)", settings.url, config.name, config.node_id)
        return config
    raise AssertionError("unreachable: delays() never ends")
