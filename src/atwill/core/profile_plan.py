"""What `atwill apply` does to make the cloud match a profile: an ordered list of steps.

Only the fields an entry gives are compared (a profile that leaves out a flavor's
description does not clear it); lists and maps it gives (rules, interfaces, roles, extra
specs) are compared whole. Creates and changes run in dependency order (roles, projects,
users, flavors, images, availability zones, networks, subnets, routers, security groups),
deletions after them in the reverse order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .profile import KINDS, Profile, ProfileError, State
from .profile_schema import CREATE_ONLY, FIXED, REPLACED

SIGNS = {"create": "+", "update": "~", "replace": "±", "delete": "-"}
# Not a kind: the compute hosts the cloud has (by name), which zones may list.
COMPUTE_HOSTS = "_compute_hosts"
NEEDED = {"flavors": ("vcpus", "ram"), "subnets": ("cidr",), "images": ("file",)}


@dataclass
class Step:
    action: str  # create, update, replace or delete
    kind: str
    key: str
    want: dict[str, Any] | None = None
    have: dict[str, Any] | None = None
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        head = f"{SIGNS[self.action]} {self.kind.rstrip('s').replace('_', ' ')} {self.key}"
        if not self.changes:
            return head
        return head + ": " + "; ".join(f"{name} {_short(old)} -> {_short(new)}"
                                       for name, (old, new) in self.changes.items())


def _short(value: Any) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def diff(kind: str, want: dict[str, Any], have: dict[str, Any]) -> dict[str, tuple]:
    """The fields want gives that differ from have, as (have's, want's)."""
    changes = {}
    for name, value in want.items():
        if name in CREATE_ONLY.get(kind, ()):
            continue
        old = plain(have.get(name))
        if name == "quotas":
            # Only the quotas that differ: the others are neither shown nor set.
            moved = [k for k in value if (old or {}).get(k) != value[k]]
            if moved:
                changes[name] = ({k: (old or {}).get(k) for k in moved},
                                 {k: value[k] for k in moved})
        elif old != value:
            changes[name] = (old, value)
    return changes


def plain(value: Any) -> Any:
    """value without the cloud's own fields (ids: keys starting with _), for comparing."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def plan(profile: Profile, current: State) -> list[Step]:
    """The steps, or ProfileError (file:line: field) if the profile cannot be applied."""
    check_references(profile, current)
    steps: list[Step] = []
    for kind in KINDS:
        for key, want in sorted(profile.present[kind].items()):
            have = current[kind].get(key)
            if have is None:
                missing = [n for n in NEEDED.get(kind, ()) if n not in want]
                if missing:
                    raise ProfileError(f"{profile.place(kind, key)}: {missing[0]} is needed "
                                       "to create it")
                steps.append(Step("create", kind, key, want))
                continue
            changes = diff(kind, want, _in_scope(profile, kind, want, have))
            fixed = sorted(set(changes) & FIXED.get(kind, set()))
            if fixed:
                raise ProfileError(f"{profile.place(kind, key)}.{fixed[0]}: cannot change "
                                   f"({_short(changes[fixed[0]][0])} in the cloud); delete "
                                   "it first (state: absent) or keep it")
            if changes:
                action = "replace" if set(changes) & REPLACED.get(kind, set()) else "update"
                steps.append(Step(action, kind, key, want, have, changes))
    for kind in reversed(KINDS):
        for key in sorted(profile.absent[kind]):
            if key in current[kind]:
                steps.append(Step("delete", kind, key, None, current[kind][key]))
    return steps


def _in_scope(profile: Profile, kind: str, want: dict[str, Any],
              have: dict[str, Any]) -> dict[str, Any]:
    """have as the profile may change it: a user's grants in projects the profile does not
    name are left alone (seed 003 grants its admin a role in one project: listing that one
    must not revoke the admin's own role on the admin project)."""
    if kind != "users" or "roles" not in want:
        return have
    named = set(profile.present["projects"]) | set(profile.absent["projects"]) | {
        g["project"] for g in want["roles"]}
    return {**have, "roles": [g for g in have.get("roles") or [] if g["project"] in named]}


def summary(steps: list[Step]) -> str:
    counts = {action: sum(1 for s in steps if s.action == action) for action in SIGNS}
    return (f"{counts['create']} to create, {counts['update']} to change, "
            f"{counts['replace']} to replace, {counts['delete']} to delete")


def _names(profile: Profile, current: State, kind: str) -> set[str]:
    """The keys of kind that exist once the profile is applied."""
    return (set(current[kind]) | set(profile.present[kind])) - profile.absent[kind]


def check_references(profile: Profile, current: State) -> None:
    """Every name an entry refers to exists after the apply, or the error says where."""
    projects, roles = _names(profile, current, "projects"), _names(profile, current, "roles")
    networks = _names(profile, current, "networks")
    subnets = _names(profile, current, "subnets")
    groups = _names(profile, current, "security_groups")

    def need(ok: bool, kind: str, key: str, what: str) -> None:
        if not ok:
            raise ProfileError(f"{profile.place(kind, key)}: {what} does not exist and is "
                               "not in the profile")

    for key, user in profile.present["users"].items():
        if user.get("default_project"):
            need(user["default_project"] in projects, "users", key,
                 f"default_project {user['default_project']}")
        for grant in user.get("roles") or []:
            need(grant["project"] in projects, "users", key, f"project {grant['project']}")
            need(grant["role"] in roles, "users", key, f"role {grant['role']}")
    for kind in ("networks", "routers", "security_groups"):
        for key, entry in profile.present[kind].items():
            need(entry["project"] in projects, kind, key, f"project {entry['project']}")
    for key, router in profile.present["routers"].items():
        if router.get("external_gateway"):
            need(_named(networks, router["external_gateway"]), "routers", key,
                 f"network {router['external_gateway']}")
        for name in router.get("interfaces") or []:
            need(_named(subnets, name), "routers", key, f"subnet {name}")
    hosts = current.get(COMPUTE_HOSTS, {})
    for key, zone in profile.present["availability_zones"].items():
        for host in zone.get("hosts") or []:
            need(host in hosts, "availability_zones", key, f"compute host {host}")
    for key, group in profile.present["security_groups"].items():
        project = group["project"]
        for rule in group.get("rules") or []:
            if rule["remote_group"]:
                need(f"{project}/{rule['remote_group']}" in groups, "security_groups", key,
                     f"security group {project}/{rule['remote_group']}")


def _named(keys: set[str], name: str) -> bool:
    return any(key.split("/", 1)[1] == name for key in keys)
