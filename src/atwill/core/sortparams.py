"""Nova's sort_key/sort_dir list parameters: which keys a list accepts, in which order."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from .errors import BadRequest, Forbidden

DIRECTIONS = ("asc", "desc")


def sort_pairs(keys: Sequence[str], dirs: Sequence[str], valid: Collection[str],
               ignored: Collection[str] = (), admin_only: Collection[str] = (),
               is_admin: bool = False) -> list[tuple[str, str]]:
    """(key, direction) pairs from repeated sort_key/sort_dir, as Nova pairs them.

    With no direction at all every key sorts desc (Nova's default); keys Nova accepts but does not
    sort by are dropped silently; an unknown key or direction is a 400, and a
    key only administrators may sort by is a 403 for anyone else.
    """
    for direction in dirs:
        if direction not in DIRECTIONS:
            raise BadRequest(f"Invalid input for query parameters sort_dir. Value: "
                             f"{direction[:64]}. '{direction[:64]}' is not one of "
                             "['asc', 'desc']")
    if len(dirs) > len(keys):
        raise BadRequest("Sort direction size exceeds sort key size")
    # Keys without a direction of their own take the last one given (Nova's rule).
    dirs = list(dirs) + [dirs[-1] if dirs else "desc"] * (len(keys) - len(dirs))
    pairs = []
    for i, key in enumerate(keys):
        if key not in valid and key not in ignored:
            raise BadRequest(f"Invalid input for query parameters sort_key. Value: "
                             f"{key[:64]}. '{key[:64]}' is not a valid sort key.")
        if key in admin_only and not is_admin:
            raise Forbidden(f"Only administrators can sort servers by {key}")
        if key in valid:
            pairs.append((key, dirs[i]))
    return pairs
