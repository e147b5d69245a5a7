"""Flavor request validation, kept apart from the database so it is testable alone."""

from __future__ import annotations

import re
from typing import Any

MAX_INT = 2**31 - 1
_FLAVOR_ID = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )$")
_SPEC_KEY = re.compile(r"^[a-zA-Z0-9-_:. /]{1,255}$")
# Sort keys Nova accepts, mapped to our column names.
SORT_KEYS = {
    "flavorid": "flavorid", "id": "id", "name": "name", "memory_mb": "ram", "vcpus": "vcpus",
    "root_gb": "disk", "ephemeral_gb": "ephemeral", "swap": "swap",
    "rxtx_factor": "rxtx_factor", "is_public": "is_public", "created_at": "created_at",
    "description": "description", "disabled": "id", "updated_at": "created_at",
}


class InvalidFlavor(ValueError):
    """A flavor field is unacceptable; the message names the field and why."""


def integer(body: dict[str, Any], key: str, minimum: int, default: int | None = None) -> int:
    """An integer field, also as a digit string as Nova allows, within [minimum, MAX_INT]."""
    value = body.get(key)
    if value is None or value == "":
        if default is None:
            raise InvalidFlavor(f"Invalid input for field/attribute {key}: it is required.")
        return default
    if isinstance(value, bool):
        raise InvalidFlavor(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                            "It is not an integer.")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int):
        raise InvalidFlavor(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                            "It is not an integer.")
    if not minimum <= value <= MAX_INT:
        raise InvalidFlavor(f"Invalid input for field/attribute {key}. Value: {value}. "
                            f"It must be between {minimum} and {MAX_INT}.")
    return value


def name(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidFlavor("Invalid input for field/attribute name: a string of 1 to 255 "
                            "characters is required.")
    if value != value.strip() or not value.isprintable():
        raise InvalidFlavor(f"Invalid input for field/attribute name. Value: {value!r}. "
                            "It has leading or trailing spaces or unprintable characters.")
    return value


def flavor_id(value: object) -> str | None:
    """The requested id, or None when the server should generate one."""
    if value is None or value == "auto":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or not _FLAVOR_ID.match(value):
        raise InvalidFlavor(f"Invalid input for field/attribute id. Value: {value!r}. "
                            "Use letters, digits, '.', '_', '-' and inner spaces.")
    return value


def rxtx_factor(value: object) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidFlavor(f"Invalid input for field/attribute rxtx_factor: {value!r}.")
    try:
        number = float(value)
    except ValueError:
        raise InvalidFlavor(f"Invalid input for field/attribute rxtx_factor: {value!r}.") from None
    if not 0 < number <= 3.40282e38:
        raise InvalidFlavor("Invalid input for field/attribute rxtx_factor: it must be > 0.")
    return number


def description(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 65535 or not value.isprintable():
        raise InvalidFlavor("Invalid input for field/attribute description: a printable "
                            "string of at most 65535 characters is required.")
    return value


def boolean(value: object, key: str, default: bool) -> bool:
    """A boolean, also as the strings Nova's schema accepts."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "t", "y"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "no", "off", "f", "n"):
        return False
    raise InvalidFlavor(f"Invalid input for field/attribute {key}. Value: {value!r}. "
                        "It is not a boolean.")


def parse_create(body: dict[str, Any]) -> dict[str, Any]:
    """Validated column values for a new flavor (flavorid None means generate)."""
    return {
        "name": name(body.get("name")),
        "flavorid": flavor_id(body.get("id")),
        "ram": integer(body, "ram", 1),
        "vcpus": integer(body, "vcpus", 1),
        "disk": integer(body, "disk", 0),
        "ephemeral": integer(body, "OS-FLV-EXT-DATA:ephemeral", 0, default=0),
        "swap": integer(body, "swap", 0, default=0),
        "rxtx_factor": rxtx_factor(body.get("rxtx_factor")),
        "is_public": boolean(body.get("os-flavor-access:is_public"),
                             "os-flavor-access:is_public", True),
        "description": description(body.get("description")),
    }


def spec_key(key: object) -> str:
    if not isinstance(key, str) or not _SPEC_KEY.match(key):
        raise InvalidFlavor(f"Invalid extra spec key {key!r}: 1 to 255 of letters, digits, "
                            "'-', '_', ':', '.', ' ' and '/'.")
    return key


def spec_value(key: str, value: object) -> str:
    """Extra spec values are stored as strings; numbers and booleans are converted."""
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str) or len(value) > 255:
        raise InvalidFlavor(f"Invalid extra spec value for {key!r}: a string of at most "
                            "255 characters is required.")
    return value


def parse_specs(specs: object) -> dict[str, str]:
    if not isinstance(specs, dict) or not specs:
        raise InvalidFlavor("Invalid input: 'extra_specs' must be a non-empty object.")
    return {spec_key(k): spec_value(k, v) for k, v in specs.items()}
