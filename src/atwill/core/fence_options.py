"""Fence device options as Pacemaker's stonith passes them to a fence agent.

Options are `key=value` pairs that become the agent's stdin lines. Secrets (any
option whose name mentions a password, secret or key) are stored apart and
never shown; `pcmk_*` options are Pacemaker's own and are not passed on.
"""

from __future__ import annotations

import re

from .errors import BadRequest
from .text import has_control, shown

AGENT = re.compile(r"^fence_[a-z0-9_]{1,60}$")
OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SECRET_NAME = re.compile(r"passw|secret|key", re.IGNORECASE)
MASK = "******"
ACTIONS = ("status", "off", "on", "reboot")
# Set by atwill for each run; an operator's value would change what the run does.
RESERVED = frozenset({"action", "nodename"})
MAX_OPTIONS = 64
MAX_VALUE = 1024
MAX_LEVEL = 9


def check_agent(agent: str) -> str:
    """A fence agent's name (fence_ipmilan, fence_apc, …), or a 400."""
    if not isinstance(agent, str) or not AGENT.match(agent):
        raise BadRequest(f"Invalid fence agent {shown(agent)}: expected a name like "
                         "fence_ipmilan.")
    return agent


def check_level(level: int) -> int:
    if not isinstance(level, int) or isinstance(level, bool) or not 1 <= level <= MAX_LEVEL:
        raise BadRequest(f"Invalid fencing level {shown(level)}: expected 1 to {MAX_LEVEL}.")
    return level


def parse_pairs(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings (as given to --option) into a dict, or a 400."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise BadRequest(f"Invalid fence option {shown(key)}: expected key=value.")
        options[key.strip()] = value
    return check_options(options)


def check_options(options: dict[str, str]) -> dict[str, str]:
    """Option names and values an agent's stdin can carry unambiguously, or a 400."""
    if not isinstance(options, dict) or len(options) > MAX_OPTIONS:
        raise BadRequest(f"Invalid fence options: expected at most {MAX_OPTIONS} key=value "
                         "pairs.")
    for key, value in options.items():
        if not isinstance(key, str) or not OPTION_NAME.match(key):
            raise BadRequest(f"Invalid fence option name {shown(key)}: lower-case letters, "
                             "digits and underscores.")
        if key in RESERVED:
            raise BadRequest(f"Fence option '{key}' is set by atwill for each run.")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise BadRequest(f"Invalid value for fence option '{key}': a string of at most "
                             f"{MAX_VALUE} characters.")
        # A newline would start another stdin line: an option the operator did not set.
        if has_control(value):
            raise BadRequest(f"Invalid value for fence option '{key}': control characters "
                             "are not allowed.")
    if "pcmk_host_map" in options:
        host_map(options["pcmk_host_map"])
    return options


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def split_secrets(options: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain options, secret options)."""
    plain = {k: v for k, v in options.items() if not is_secret(k)}
    secret = {k: v for k, v in options.items() if is_secret(k)}
    return plain, secret


def masked(plain: dict[str, str], secret_names: list[str]) -> dict[str, str]:
    """What show and list display: secrets by name only."""
    return {**plain, **{name: MASK for name in secret_names}}


def host_map(text: str) -> dict[str, str]:
    """Pacemaker's pcmk_host_map ("node1:2;node2:3", also with spaces or commas), or a 400."""
    mapping: dict[str, str] = {}
    for item in re.split(r"[;,\s]+", text.strip()):
        if not item:
            continue
        host, sep, port = item.partition(":")
        if not sep or not host or not port:
            raise BadRequest(f"Invalid pcmk_host_map entry {shown(item)}: expected host:port.")
        mapping[host] = port
    return mapping


def agent_stdin(options: dict[str, str], action: str, node: str) -> str:
    """The stdin lines for one run of an agent against `node` (as stonith-ng writes them)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown fence action {action!r}")
    lines = {k: v for k, v in options.items() if not k.startswith("pcmk_")}
    port = host_map(options.get("pcmk_host_map", "")).get(node)
    if port is not None:
        lines["port"] = port
    elif "pcmk_host_argument" in options and options["pcmk_host_argument"] != "none":
        lines[options["pcmk_host_argument"]] = node
    lines["action"] = action
    lines["nodename"] = node
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def redact(text: str, secrets: list[str]) -> str:
    """text with every secret value replaced, so no log or error can carry one."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
