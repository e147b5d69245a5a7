"""Nova's view of a Neutron security group (GET /servers/{id}/os-security-groups)."""

from __future__ import annotations

from typing import Any


def nova_rule(rule: dict[str, Any], remote: dict[str, str] | None) -> dict[str, Any]:
    """One ingress rule as Nova converts it: a protocol without ports means all of them.

    remote is {name, tenant_id} of the rule's remote group, None when it has none.
    """
    low, high = rule.get("port_range_min"), rule.get("port_range_max")
    protocol = rule.get("protocol")
    if protocol and low is None and high is None:
        low, high = (1, 65535) if protocol.upper() in ("TCP", "UDP") else (-1, -1)
    out: dict[str, Any] = {"id": rule["id"], "parent_group_id": rule["security_group_id"],
                           "ip_protocol": protocol, "from_port": low, "to_port": high,
                           "group": {}, "ip_range": {}}
    if rule.get("remote_group_id"):
        out["group"] = dict(remote or {})
    else:
        # Nova's parse_cidr: a rule open to every address shows as 0.0.0.0/0.
        out["ip_range"] = {"cidr": rule.get("remote_ip_prefix") or "0.0.0.0/0"}
    return out


def nova_group(group: dict[str, Any], remotes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A Neutron group as Nova shows it: only its ingress rules, whose remote group is
    looked up in remotes (id -> {name, tenant_id})."""
    rules = [nova_rule(r, remotes.get(r.get("remote_group_id") or ""))
             for r in group.get("security_group_rules", []) if r["direction"] == "ingress"]
    return {"id": group["id"], "name": group["name"], "tenant_id": group["project_id"],
            "description": group.get("description") or "", "rules": rules}
