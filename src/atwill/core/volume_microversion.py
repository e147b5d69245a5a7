"""Block Storage v3 microversions: 3.0 (no header) up to 3.70."""

from __future__ import annotations

from .errors import NotAcceptable
from .microversion import Version

MIN = Version(3, 0)
MAX = Version(3, 70)


def requested(headers: dict[str, str]) -> Version:
    """The version asked for in OpenStack-API-Version: volume 3.X ('latest' is MAX)."""
    text = None
    for part in headers.get("openstack-api-version", "").split(","):
        words = part.strip().split()
        if len(words) == 2 and words[0].lower() == "volume":
            text = words[1]
    if text is None:
        return MIN
    if text.strip().lower() == "latest":
        return MAX
    version = Version.parse(text)
    if version < MIN or version > MAX:
        raise NotAcceptable(f"Version {version} is not supported by the API. Minimum is "
                            f"{MIN} and maximum is {MAX}.")
    return version
