"""Availability zones of a profile as Nova host aggregates: the aggregate of the zone's
name, its hosts, and the HA monitor's policy as its metadata (core/ha_policy).

Read back only from aggregates named as their zone: another aggregate is a group of
hosts an operator made by hand, which a profile neither names nor exports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core import ha_policy
from ..core.profile import State
from ..core.profile_plan import COMPUTE_HOSTS, Step
from .apply_api import Api

if TYPE_CHECKING:
    from .apply_steps import Executor

AGG = "/os-aggregates"
# Metadata keys that are fields of the zone itself, not of its `metadata`.
OWN_KEYS = ("availability_zone", ha_policy.KEY, ha_policy.RESERVED_KEY)


def read(api: Api, state: State) -> None:
    """The zones, and the compute hosts a zone may list."""
    services = api.get("compute", "/os-services", params={"binary": "nova-compute"})
    state[COMPUTE_HOSTS] = {s["host"]: {"name": s["host"]} for s in services["services"]}
    for agg in api.get("compute", AGG)["aggregates"]:
        zone = agg.get("availability_zone")
        if not zone or agg["name"] != zone:
            continue
        meta = agg.get("metadata") or {}
        state["availability_zones"][zone] = {
            "name": zone, "_id": agg["id"], "hosts": sorted(agg.get("hosts") or []),
            "ha_policy": meta.get(ha_policy.KEY),
            "ha_reserved": ha_policy.reserved({k: [v] for k, v in meta.items()}),
            "metadata": {k: v for k, v in meta.items() if k not in OWN_KEYS}}


def _action(ex: Executor, agg_id: Any, name: str, body: dict[str, Any]) -> None:
    ex.api.call("POST", "compute", f"{AGG}/{agg_id}/action", {name: body})


def _hosts(ex: Executor, zone: str, agg_id: Any, old: list[str], new: list[str]) -> None:
    for host in [h for h in new if h not in old]:
        _action(ex, agg_id, "add_host", {"host": host})
        ex.did(f"host {host} in zone {zone}",
               lambda h=host: _action(ex, agg_id, "remove_host", {"host": h}))
    for host in [h for h in old if h not in new]:
        _action(ex, agg_id, "remove_host", {"host": host})
        ex.did(f"host {host} out of zone {zone}",
               lambda h=host: _action(ex, agg_id, "add_host", {"host": h}))


def _metadata(want: dict[str, Any], old: dict[str, Any]) -> dict[str, str | None]:
    """The set_metadata body that takes old to want (None unsets a key)."""
    out: dict[str, str | None] = {}
    if "metadata" in want:
        out.update({k: None for k in old.get("metadata") or {}})
        out.update(want["metadata"] or {})
    if "ha_policy" in want:
        out[ha_policy.KEY] = want["ha_policy"]
    if "ha_reserved" in want:
        out[ha_policy.RESERVED_KEY] = "true" if want["ha_reserved"] else None
    return out


def _set_metadata(ex: Executor, zone: str, agg_id: Any, new: dict[str, Any],
                  old: dict[str, Any]) -> None:
    meta = _metadata(new, old)
    if not meta:
        return
    _action(ex, agg_id, "set_metadata", {"metadata": meta})
    before = _metadata({**old, "metadata": old.get("metadata") or {}}, {})
    back = {k: before.get(k) for k in meta}
    ex.did(f"metadata of zone {zone}",
           lambda: _action(ex, agg_id, "set_metadata", {"metadata": back}))


def availability_zones(ex: Executor, step: Step) -> None:
    want, have = step.want or {}, step.have or {}
    if step.action == "delete":
        for host in have.get("hosts") or []:
            _action(ex, have["_id"], "remove_host", {"host": host})
        ex.api.call("DELETE", "compute", f"{AGG}/{have['_id']}")
        return
    if step.action == "create":
        made = ex.api.call("POST", "compute", AGG, {"aggregate": {
            "name": step.key, "availability_zone": step.key}})["aggregate"]
        agg_id = made["id"]
        ex.did(f"zone {step.key}", lambda: ex.api.call("DELETE", "compute", f"{AGG}/{agg_id}"))
        ex.current["availability_zones"][step.key] = {"name": step.key, "_id": agg_id}
        _hosts(ex, step.key, agg_id, [], want.get("hosts") or [])
        _set_metadata(ex, step.key, agg_id, want, {"ha_policy": None, "ha_reserved": False,
                                                   "metadata": {}})
        return
    agg_id = have["_id"]
    if "hosts" in step.changes:
        _hosts(ex, step.key, agg_id, *step.changes["hosts"])
    names = [n for n in ("ha_policy", "ha_reserved", "metadata") if n in step.changes]
    _set_metadata(ex, step.key, agg_id, {n: want[n] for n in names},
                  {n: have.get(n) for n in names})
