"""What this host reaches, read at `atwill up`'s start: the public range must avoid it."""

from __future__ import annotations

import concurrent.futures
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from ..core import mirror_hosts
from ..core.public_range import HostFacts, address_entries, route_entries

RESOLVE_SECONDS = 3.0  # a resolver that does not answer must not hold `up` for long


def pip_config_files() -> list[Path]:
    """Where pip reads its configuration (site, user, environment's, PIP_CONFIG_FILE)."""
    dirs = os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    files = [Path("/etc/pip.conf"), *(Path(d) / "pip" / "pip.conf" for d in dirs),
             Path.home() / ".pip" / "pip.conf", Path.home() / ".config" / "pip" / "pip.conf",
             Path(sys.prefix) / "pip.conf"]
    if os.environ.get("PIP_CONFIG_FILE"):
        files.append(Path(os.environ["PIP_CONFIG_FILE"]))
    return files


def apt_source_files() -> list[Path]:
    base = Path("/etc/apt")
    return [base / "sources.list", *sorted((base / "sources.list.d").glob("*.list")),
            *sorted((base / "sources.list.d").glob("*.sources"))]


def _texts(paths: list[Path]) -> list[str]:
    out = []
    for path in paths:
        try:
            out.append(path.read_text(errors="replace"))
        except OSError:
            continue
    return out


def mirror_names() -> set[str]:
    env = os.environ
    return (mirror_hosts.pip_hosts(_texts(pip_config_files()), env)
            | mirror_hosts.apt_hosts(_texts(apt_source_files()))
            | mirror_hosts.proxy_hosts(env))


def resolve(names: set[str]) -> list[tuple[str, str]]:
    """(address, why) of every IPv4 answer for these names, within RESOLVE_SECONDS."""
    def lookup(name: str) -> set[str]:
        try:
            return {str(a[4][0]) for a in socket.getaddrinfo(name, None, socket.AF_INET)}
        except OSError:
            return set()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
    futures = {pool.submit(lookup, name): name for name in sorted(names)}
    out = []
    try:
        for future in concurrent.futures.as_completed(futures, timeout=RESOLVE_SECONDS):
            name = futures[future]
            out += [(a, f"{name} ({a}), a package mirror") for a in sorted(future.result())]
    except TimeoutError:
        pass  # what did not answer in time is left out; the route check still holds
    pool.shutdown(wait=False, cancel_futures=True)
    return out


def resolvers(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, str]]:
    out = []
    for line in _texts([path])[0].splitlines() if path.exists() else []:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            out.append((words[1], f"the resolver {words[1]}"))
    return out


def _ip_json(*args: str) -> list[dict]:
    done = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=False)
    return json.loads(done.stdout or "[]") if done.returncode == 0 else []


def host_facts(own_bridge: str, reserved: list[tuple[str, str]]) -> HostFacts:
    """Routes, addresses, resolvers and package mirrors, but what atwill itself made."""
    from ..agent.net.routing import ours

    def our_table(table: object) -> bool:
        return str(table).isdigit() and ours(int(str(table)))

    ignore = frozenset({own_bridge})
    return (HostFacts()
            .plus(route_entries(_ip_json("route", "show", "table", "all"), ignore, our_table))
            .plus(address_entries(_ip_json("addr"), ignore))
            .plus(resolvers())
            .plus(resolve(mirror_names()))
            .plus(reserved))
