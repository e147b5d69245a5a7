"""Policy routing per domain: `ip rule`s by bridge and mark, and one table per domain."""

from __future__ import annotations

import json
from typing import Any

from atwill.agent.net import names
from atwill.agent.net.layout import Domain
from atwill.agent.net.model import External
from atwill.hostlib.run import run


def ours(table: int) -> bool:
    """Whether a table number is in our block."""
    return names.TABLE_BASE < table < names.TABLE_BASE + names.TABLE_SPAN


def rules() -> set[tuple[str, str, int]]:
    """Our rules as (selector kind, value, table)."""
    done = run(["ip", "-j", "rule", "show"], check=False)
    result = set()
    for rule in json.loads(done.stdout or "[]"):
        table = rule.get("table")
        if not (isinstance(table, str) and table.isdigit() and ours(int(table))):
            continue
        for key in ("iif", "oif"):
            if key in rule:
                result.add((key, rule[key], int(table)))
        if "fwmark" in rule:
            result.add(("fwmark", f"{int(rule['fwmark'], 0):#x}", int(table)))
    return result


def desired_rules(domains: list[Domain]) -> set[tuple[str, str, int]]:
    """iif/oif rules for every bridge of a domain, and one fwmark rule per domain."""
    result = set()
    for domain in domains:
        result |= {(k, b, domain.table) for b in domain.bridges for k in ("iif", "oif")}
        result.add(("fwmark", f"{domain.mark:#x}", domain.table))
    return result


def rule_add(kind: str, value: str, table: int) -> None:
    """Add one rule."""
    prio = names.RULE_PRIORITY + (1 if kind == "fwmark" else 0)
    run(["ip", "rule", "add", kind, value, "lookup", str(table), "pref", str(prio)])


def rule_del(kind: str, value: str, table: int) -> None:
    """Remove one rule."""
    run(["ip", "rule", "del", kind, value, "lookup", str(table)], check=False)


def desired_routes(domain: Domain, external: External | None,
                   sources: dict[str, str]) -> list[list[str]]:
    """The domain table's routes as `ip route` arguments."""
    routes = []
    for cidr, bridge in domain.cidrs:
        src = ["src", sources[cidr]] if cidr in sources and ":" not in cidr else []
        routes.append([cidr, "dev", bridge, "scope", "link", *src])
    router = domain.router
    uplink = router is not None and router.external_network_id is not None \
        and external is not None
    if router is not None:
        routes += [[dest, "via", hop] for dest, hop in router.routes]
    if uplink and external is not None:
        routes.append([external.cidr, "dev", external.bridge, "scope", "link"])
        if external.nat_to_host:
            pass  # no default: the lookup falls through to the host's main table
        elif external.gateway_ip:
            routes.append(["default", "via", external.gateway_ip, "dev", external.bridge])
        else:
            routes.append(["default", "dev", external.bridge])
    else:
        routes.append(["unreachable", "default"])
    return routes


def _key(route: dict[str, Any]) -> tuple[str, str, str, str]:
    dst = route.get("dst", "")
    if route.get("type") == "unreachable":
        return ("unreachable", dst, "", "")
    return (route.get("type", "unicast"), dst, route.get("dev", ""), route.get("gateway", ""))


def _want_key(args: list[str]) -> tuple[str, str, str, str]:
    if args[0] == "unreachable":
        return ("unreachable", args[1], "", "")
    dev = args[args.index("dev") + 1] if "dev" in args else ""
    gateway = args[args.index("via") + 1] if "via" in args else ""
    return ("unicast", args[0], dev, gateway)


def table_routes(table: int) -> list[dict[str, Any]]:
    """The routes of one table."""
    done = run(["ip", "-j", "route", "show", "table", str(table)], check=False)
    result: list[dict[str, Any]] = json.loads(done.stdout or "[]") if done.returncode == 0 \
        else []
    return result


def converge_table(table: int, routes: list[list[str]]) -> None:
    """Make a table hold exactly these routes (by destination, device and gateway)."""
    current = {_key(r) for r in table_routes(table)}
    if current == {_want_key(r) for r in routes}:
        return
    flush(table)
    for route in routes:
        run(["ip", "route", "replace", *route, "table", str(table)])


def flush(table: int) -> None:
    """Empty a table."""
    run(["ip", "route", "flush", "table", str(table)], check=False)


def used_tables() -> set[int]:
    """Our tables that have routes or rules now."""
    done = run(["ip", "-j", "route", "show", "table", "all"], check=False)
    tables = {int(r["table"]) for r in json.loads(done.stdout or "[]")
              if str(r.get("table", "")).isdigit()}
    return {t for t in tables if ours(t)} | {t for _, _, t in rules()}
