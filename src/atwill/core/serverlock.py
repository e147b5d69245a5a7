"""Who may unlock a server: Nova's locked_by ('owner' or 'admin')."""

from __future__ import annotations

from .errors import BadRequest

MAX_REASON = 255


def locked_by(instance_project: str, caller_project: str | None) -> str:
    """Nova records 'owner' when the instance's own project locks it, else 'admin'."""
    return "owner" if instance_project == caller_project else "admin"


def may_unlock(recorded: str | None, instance_project: str, caller_project: str | None,
               is_admin: bool) -> bool:
    """An admin may always unlock; others only a lock their own side took."""
    if is_admin or recorded is None:
        return True
    return recorded == locked_by(instance_project, caller_project)


def reason(args: object, reason_allowed: bool) -> str | None:
    """The lock action's body: null or {} (any version), {"locked_reason": …} from 2.73."""
    if args is None:
        return None
    if not isinstance(args, dict):
        raise BadRequest("Invalid input for field/attribute lock. Value: "
                         f"{args!r}. {args!r} is not of type 'object', 'null'")
    extra = set(args) - {"locked_reason"}
    if extra or (args and not reason_allowed):
        names = ", ".join(repr(k) for k in sorted(extra or args))
        raise BadRequest("Invalid input for field/attribute lock. Additional properties "
                         f"are not allowed ({names} was unexpected)")
    text = args.get("locked_reason")
    if text is None:
        return None
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_REASON:
        raise BadRequest("Invalid input for field/attribute locked_reason: a string of 1 "
                         f"to {MAX_REASON} characters is required.")
    return text
