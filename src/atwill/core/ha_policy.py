"""What the HA monitor may do about a failed node: the policy of its zone or node group.

An operator sets it as aggregate metadata, on the aggregate that makes an availability
zone or on any other group of hosts:

    openstack aggregate set --property ha_policy=autonomous edge

- evacuate (the default): a down node is fenced (its device, or its own lease), then its
  HA instances are rebuilt elsewhere.
- manual: a down node is fenced as under evacuate, but nothing is moved; the operator
  evacuates (`openstack server evacuate`, `atwill node evacuate`) once it is fenced.
- autonomous (edge sites that must work cut off): nothing is fenced and nothing is
  moved; the node never fences itself, so its VMs keep serving through a partition and
  carry on untouched when it heals.

Spare nodes (Masakari's reserved hosts) wait for failures: a node in an aggregate with
`ha_reserved=true` takes no new server, resize or migration, even one that names it
(2.74's host), and an evacuation tries it before every other node, so a failure neither
waits for room nor crowds the survivors. An admin's forced host (zone:host) skips every
filter, this one too, as in Nova:

    openstack aggregate set --property ha_reserved=true spares

A node in several groups that name different policies takes the one that does least
on its own (autonomous, then manual): an operator who marked a site autonomous never
sees it fenced because of some other grouping. A value the API refused cannot be
stored, so an unknown one (an older row) counts as the cloud's default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import BadRequest
from .text import shown

KEY = "ha_policy"
RESERVED_KEY = "ha_reserved"
_TRUE, _FALSE = frozenset({"true", "yes", "1", "on"}), frozenset({"false", "no", "0", "off"})
EVACUATE, MANUAL, AUTONOMOUS = "evacuate", "manual", "autonomous"
POLICIES = (EVACUATE, MANUAL, AUTONOMOUS)  # from most to least automatic


def check(value: object) -> str:
    """A policy given by an operator (aggregate metadata, settings); 400 otherwise."""
    if value not in POLICIES:
        raise BadRequest(f"Invalid {KEY} {value!r}: expected one of {', '.join(POLICIES)}.")
    return str(value)


def check_reserved(value: object) -> str:
    """ha_reserved as an operator may set it (any case of true/false, yes/no, on/off, 1/0)."""
    if not isinstance(value, str) or value.strip().lower() not in _TRUE | _FALSE:
        raise BadRequest(f"Invalid {RESERVED_KEY} {shown(value)}: expected true or false.")
    return "true" if value.strip().lower() in _TRUE else "false"


def reserved(metadata: Mapping[str, Iterable[str]]) -> bool:
    """Whether a host whose aggregates carry metadata is a spare kept for evacuations."""
    return any(v.strip().lower() in _TRUE for v in metadata.get(RESERVED_KEY, ()))


def of_node(values: Iterable[str | None], default: str) -> str:
    """The policy of a node whose groups name `values` (None: the group names none)."""
    named = [v for v in values if v in POLICIES]
    if not named:
        return default
    return max(named, key=POLICIES.index)


def fences(policy: str) -> bool:
    """Whether a down node is fenced (by its device, or by its agent's own lease)."""
    return policy != AUTONOMOUS


def evacuates(policy: str) -> bool:
    """Whether the HA instances of a fenced node are rebuilt elsewhere without asking."""
    return policy == EVACUATE


def why_not(policy: str, node: str) -> str:
    """What the operator is told when a down node's instances stay where they are."""
    if policy == AUTONOMOUS:
        return (f"availability zone policy autonomous: {node} is neither fenced nor "
                "evacuated; its VMs keep running and carry on when it is back")
    return (f"policy manual: {node} is fenced but nothing is evacuated automatically; "
            f"run 'atwill node evacuate {node}' or 'openstack server evacuate'")
