"""nftables JSON expressions (libnftables-json(5)) as plain Python values.

Rules are built as data and handed to `nft -j`, so a value can only ever be a value: no
string from the desired state is parsed as ruleset syntax.
"""

from __future__ import annotations

import ipaddress
from typing import Any

Expr = Any
TABLE = "atwill"


def meta(key: str) -> Expr:
    return {"meta": {"key": key}}


def payload(protocol: str, field: str) -> Expr:
    return {"payload": {"protocol": protocol, "field": field}}


def ct(key: str, direction: str | None = None) -> Expr:
    return {"ct": {"key": key, **({"dir": direction} if direction else {})}}


def match(left: Expr, right: Expr, op: str = "==") -> Expr:
    return {"match": {"op": op, "left": left, "right": right}}


def concat(*items: Expr) -> Expr:
    return {"concat": list(items)}


def anon(items: list[Expr]) -> Expr:
    """An anonymous set (a single item stands alone: nft refuses empty sets)."""
    return items[0] if len(items) == 1 else {"set": items}


def address(value: str) -> Expr:
    """An address or a prefix (host prefixes become bare addresses)."""
    net = ipaddress.ip_network(value, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def mangle(key: Expr, value: Expr) -> Expr:
    return {"mangle": {"key": key, "value": value}}


def verdict(name: str, target: str | None = None) -> Expr:
    return {name: {"target": target} if target else None}


def jump(target: str) -> Expr:
    return verdict("jump", target)


ACCEPT, DROP, RETURN = verdict("accept"), verdict("drop"), verdict("return")


def table(family: str) -> dict[str, str]:
    return {"family": family, "name": TABLE}


def add(kind: str, family: str, **fields: Any) -> dict[str, Any]:
    """An `add` command for a set, map, chain or element of our table."""
    body = {"family": family, "table": TABLE, **fields}
    return {"add": {kind: body}}


def rule(family: str, chain: str, *expr: Expr) -> dict[str, Any]:
    return add("rule", family, chain=chain, expr=list(expr))


def base_chain(family: str, name: str, kind: str, hook: str, prio: int,
               policy: str = "accept") -> dict[str, Any]:
    return add("chain", family, name=name, type=kind, hook=hook, prio=prio, policy=policy)


def declare(family: str, name: str, kind: str | list[str], elements: list[Expr],
            flags: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "type": kind}
    if elements:
        body["elem"] = elements
    if flags:
        body["flags"] = flags
    return add("set", family, **body)


def declare_map(family: str, name: str, kind: str | list[str]) -> dict[str, Any]:
    return add("map", family, name=name, type=kind, map="verdict")


def elements(family: str, name: str, items: list[Expr]) -> dict[str, Any]:
    return add("element", family, name=name, elem=items)


def replace_table(family: str) -> list[dict[str, Any]]:
    """Commands that make our table exist and empty, in the same transaction as the rest."""
    return [{"add": {"table": table(family)}}, {"delete": {"table": table(family)}},
            {"add": {"table": table(family)}}]
