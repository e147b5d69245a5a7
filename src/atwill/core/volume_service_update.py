"""Block Storage PUT /v3/os-services/{action}: what an enable or a disable asks.

Checked as Cinder checks it (cinder/api/schemas/services.py and api/contrib/services.py):
the body names the service by host and binary (or the deprecated 'service' key), a
disable-log-reason may add a disabled_reason of 1 to 255 characters once stripped, and
nothing else is allowed. The errors are Cinder's 400s; finding the service is the caller's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest, NotFound
from .text import has_control

ACTIONS = ("enable", "disable", "disable-log-reason")
# Replication's actions on a backend (Cinder's api/v3/services.py): freeze and thaw are
# done (controller/volume/freeze.py); failover_host is refused as Cinder refuses it for a
# backend without replication.
BACKEND_ACTIONS = ("freeze", "thaw", "failover_host")
REPLICATION_CLUSTER = "3.26"  # from it a body may name a cluster instead of a host
REASON_MAX = 255  # Cinder's services.disabled_reason column and its schema
_HOST = re.compile(r"^[a-zA-Z0-9-._#@:/+]*$")  # Cinder's parameter_types.hostname
_KEYS = {"host", "binary", "service", "cluster"}


@dataclass(frozen=True)
class ServiceUpdate:
    host: str
    binary: str  # the binary the caller means: 'binary', or else the deprecated 'service'
    disabled: bool
    # disable-log-reason writes the reason, enable clears it (Cinder's before schema
    # validation, and Nova's), a plain disable keeps what was there.
    sets_reason: bool
    reason: str | None
    echo: dict[str, Any]  # the response body (Cinder's ret_val)


def _invalid(field: str, value: Any, why: str) -> BadRequest:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return BadRequest(f"Invalid input for field/attribute {field}. Value: {shown}. {why}")


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    """The schema's additionalProperties: false, worded as Cinder's 400."""
    extra = sorted(set(body) - allowed)
    if extra:
        listed = ", ".join(repr(k) for k in extra)
        raise BadRequest(f"Invalid input for field/attribute None. Additional properties are "
                         f"not allowed ({listed} {'was' if len(extra) == 1 else 'were'} "
                         "unexpected)")


def _name(body: dict[str, Any], key: str, limit: int = 255) -> str | None:
    value = body.get(key)
    if value is None and key == "host":
        return None  # the hostname type allows null; 'Host field is missing.' follows
    if key not in body:
        return None
    if not isinstance(value, str):
        raise _invalid(key, value, f"{value!r} is not of type 'string'")
    if not value:
        raise _invalid(key, value, "'' should be non-empty")
    if len(value) > limit:
        raise _invalid(key, value, "The value is too long")
    if key == "host" and not _HOST.match(value):
        raise _invalid(key, value, f"{value!r} does not match '{_HOST.pattern}'")
    return value


def _reason(body: dict[str, Any]) -> str | None:
    if "disabled_reason" not in body:
        return None
    value = body["disabled_reason"]
    if not isinstance(value, str):
        raise _invalid("disabled_reason", value, f"{value!r} is not of type 'string'")
    if not value.strip():
        raise BadRequest("Invalid input received: disabled_reason has a minimum character "
                         "requirement of 1.")
    if len(value) > REASON_MAX:
        raise BadRequest(f"Invalid input received: disabled_reason has more than "
                         f"{REASON_MAX} characters.")
    if has_control(value):  # NUL is a 500 on PostgreSQL; ESC would reach admins' terminals
        raise BadRequest("Invalid input received: disabled_reason may not hold control "
                         "characters.")
    return value


@dataclass(frozen=True)
class BackendAction:
    action: str
    host: str | None
    cluster: str | None  # only from 3.26; exactly one of the two is set


def parse_backend(action: str, body: dict[str, Any], clustered: bool) -> BackendAction:
    """PUT os-services/{freeze,thaw,failover_host}'s body, checked as Cinder's schemas
    (freeze_and_thaw, failover_host) and common.get_cluster_host; clustered: the request's
    microversion is at least 3.26."""
    allowed = {"host", "cluster"} | ({"backend_id"} if action == "failover_host" else set())
    _only(body, allowed)
    for key in ("cluster", "backend_id"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise _invalid(key, body[key], "It must be a string or null")
    host = _name(body, "host")
    cluster = body.get("cluster") if clustered else None
    if bool(cluster) == bool(host):
        raise BadRequest("Invalid input received: " + (
            "One and only one of cluster and host must be set." if clustered
            else "Host field is missing."))
    return BackendAction(action, host, cluster or None)


def parse(action: str, body: dict[str, Any]) -> ServiceUpdate:
    """The update asked by PUT os-services/{action} with this JSON object, or a 400."""
    if action not in ACTIONS:
        # Cinder's answer to an action it does not route (contrib/services.py's).
        raise NotFound("Unknown action")
    allowed = _KEYS | ({"disabled_reason"} if action == "disable-log-reason" else set())
    _only(body, allowed)
    binary, service = _name(body, "binary"), _name(body, "service")
    if binary is None and service is None:
        raise BadRequest("Invalid input for field/attribute None. 'binary' is a required "
                         "property")
    if body.get("cluster") is not None and not isinstance(body["cluster"], str):
        raise _invalid("cluster", body["cluster"], "It must be a string or null")
    reason = _reason(body) if action == "disable-log-reason" else None
    host = _name(body, "host")
    if host is None:
        raise BadRequest("Invalid input received: Host field is missing.")
    disabled = action != "enable"
    echo: dict[str, Any] = {"disabled": disabled, "status": "disabled" if disabled else
                            "enabled", "host": host, "service": service or "",
                            "binary": binary or ""}
    if action == "disable-log-reason":
        echo["disabled_reason"] = reason
    return ServiceUpdate(host=host, binary=binary or service or "", disabled=disabled,
                         sets_reason=action != "disable", reason=reason, echo=echo)
