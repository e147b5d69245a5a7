"""Compute microversions: parse the request headers and compare versions."""

from __future__ import annotations

import functools
import re

from .errors import BadRequest, NotAcceptable

MIN_VERSION = (2, 1)
MAX_VERSION = (2, 96)
_PATTERN = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@functools.total_ordering
class Version:
    __slots__ = ("major", "minor")

    def __init__(self, major: int, minor: int) -> None:
        self.major, self.minor = major, minor

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _PATTERN.match(text.strip())
        if not match:
            raise BadRequest(f"Version {text!r} is not in a valid format; expected X.Y.")
        return cls(int(match.group(1)), int(match.group(2)))

    def _key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __ge__(self, other: object) -> bool:  # also accepts "2.53" for brevity in handlers
        if isinstance(other, str):
            other = Version.parse(other)
        return self._key() >= other._key()  # type: ignore[union-attr]

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    __repr__ = __str__


MIN = Version(*MIN_VERSION)
MAX = Version(*MAX_VERSION)


def requested(headers: dict[str, str], service: str = "compute") -> Version:
    """The version the client asked for; 'latest' is MAX; no header means 2.1."""
    text = None
    generic = headers.get("openstack-api-version")
    if generic:
        for part in generic.split(","):
            words = part.strip().split()
            if len(words) == 2 and words[0].lower() == service:
                text = words[1]
    if text is None:
        text = headers.get("x-openstack-nova-api-version")
    if text is None:
        return MIN
    if text.strip().lower() == "latest":
        return MAX
    version = Version.parse(text)
    if version < MIN or version > MAX:
        raise NotAcceptable(
            f"Version {version} is not supported by the API. "
            f"Minimum is {MIN} and maximum is {MAX}.")
    return version
