"""Cold migration and resize, as Nova's API states them: the request bodies, which states
each action starts from, the flavor rules, the upsize quota, and when to auto-confirm.

A cold migration (migrate) is a resize to the same flavor. The migration record goes
pre-migrating -> migrating (the source stopped the guest and sends its disk) ->
post-migrating (the destination has it) -> finished (VERIFY_RESIZE), then confirmed
or reverting -> reverted; error on a failure before finished.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .errors import BadRequest, Forbidden
from .microversion import Version
from .text import shown

# The vm_states Nova resizes and cold-migrates from (check_instance_state).
RESIZE_FROM = frozenset({"active", "stopped"})
# The task_states of a resize until VERIFY_RESIZE, in order; then resize_reverting.
TASKS = ("resize_prep", "resize_migrating", "resize_migrated", "resize_finish")
REVERTING = "resize_reverting"
# Migration statuses before the resize finished: the destination's claim is still held.
MOVING = frozenset({"pre-migrating", "migrating", "post-migrating"})
DISK_CONFIGS = frozenset({"AUTO", "MANUAL"})


@dataclasses.dataclass(frozen=True)
class ResizeRequest:
    flavor_ref: str | None  # None: a cold migration (the flavor stays)
    host: str | None = None


def parse_resize(args: Any) -> ResizeRequest:
    """The resize action's body, or 400 with Nova's kind of message."""
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid input for field/attribute resize. Value: {shown(args)}. "
                         f"{shown(args)} is not of type 'object'")
    extra = sorted(set(args) - {"flavorRef", "OS-DCF:diskConfig"})
    if extra:
        raise BadRequest("Invalid input for field/attribute resize. Additional properties "
                         f"are not allowed ({', '.join(map(repr, extra))} was unexpected)")
    ref = args.get("flavorRef")
    if "flavorRef" not in args:
        raise BadRequest("Invalid input for field/attribute resize. 'flavorRef' is a "
                         "required property")
    if isinstance(ref, int) and not isinstance(ref, bool):
        ref = str(ref)
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 255:
        raise BadRequest(f"Invalid input for field/attribute flavorRef. Value: {shown(ref)}. "
                         "A flavor id or link of 1 to 255 characters is required.")
    config = args.get("OS-DCF:diskConfig", "AUTO")
    if config not in DISK_CONFIGS:
        raise BadRequest("Invalid input for field/attribute OS-DCF:diskConfig. Value: "
                         f"{shown(config)}. {shown(config)} is not one of ['AUTO', 'MANUAL']")
    return ResizeRequest(flavor_ref=ref)


def parse_migrate(args: Any, version: Version) -> ResizeRequest:
    """The migrate action's body: null, or from 2.56 an object with an optional host."""
    if args is None:
        return ResizeRequest(flavor_ref=None)
    if not version >= "2.56":
        raise BadRequest(f"Invalid input for field/attribute migrate. Value: {shown(args)}. "
                         f"{shown(args)} is not of type 'null'")
    if not isinstance(args, dict):
        raise BadRequest(f"Invalid input for field/attribute migrate. Value: {shown(args)}. "
                         f"{shown(args)} is not of type 'object', 'null'")
    extra = sorted(set(args) - {"host"})
    if extra:
        raise BadRequest("Invalid input for field/attribute migrate. Additional properties "
                         f"are not allowed ({', '.join(map(repr, extra))} was unexpected)")
    host = args.get("host")
    if host is not None and (not isinstance(host, str) or not host.strip()
                             or len(host) > 255):
        raise BadRequest(f"Invalid input for field/attribute host. Value: {shown(host)}. "
                         "A host name of 1 to 255 characters or null is required.")
    return ResizeRequest(flavor_ref=None, host=host)


def check_null_body(name: str, args: Any) -> None:
    """confirmResize and revertResize take null."""
    if args is not None:
        raise BadRequest(f"Invalid input for field/attribute {name}. Value: {shown(args)}. "
                         f"{shown(args)} is not of type 'null'")


def check_flavors(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Nova's refusals of a new flavor: the same one, a smaller or a zero root disk (400,
    for servers with a local disk, all of this cloud's resizable ones)."""
    if old.get("id") == new.get("id"):
        raise BadRequest("When resizing, instances must change flavor!")
    old_disk, new_disk = int(old.get("disk") or 0), int(new.get("disk") or 0)
    # A flavor disk of 0 means "the image's size", which may be smaller than the disk.
    if old_disk and not new_disk:
        raise BadRequest("Resize error: Resize to zero disk flavor is not allowed.")
    if old_disk and new_disk < old_disk:
        raise BadRequest("Resize error: Unable to resize disk down.")


def upsize(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, int]:
    """The cores and ram a resize adds (Nova checks only growth against the quota)."""
    return {"cores": max(0, int(new["vcpus"]) - int(old["vcpus"])),
            "ram": max(0, int(new["ram"]) - int(old["ram"]))}


def check_upsize(deltas: Mapping[str, int], limits: Mapping[str, int],
                 used: Mapping[str, int]) -> None:
    """403 with Nova's numbers when the growth would pass a limit (-1: unlimited)."""
    for resource in ("cores", "ram"):
        wanted, limit, in_use = deltas.get(resource, 0), limits[resource], used[resource]
        if wanted and limit != -1 and in_use + wanted > limit:
            raise Forbidden(f"Quota exceeded for {resource}: Requested {wanted}, but "
                            f"already used {in_use} of {limit} {resource}")


def settled_vm_state(desired_power: str) -> str:
    """Where confirm and revert leave the server: running, or stopped as it was."""
    return "stopped" if desired_power == "stopped" else "active"


def confirm_due(finished_at: dt.datetime | None, now: dt.datetime, window: float) -> bool:
    """Nova's resize_confirm_window: a finished resize confirmed after window s (0: never)."""
    return window > 0 and finished_at is not None and \
        (now - finished_at).total_seconds() >= window
