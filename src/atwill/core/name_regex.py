"""Nova's `?name=` server filter: a tenant's regular expression, matched in linear time.

Python's re backtracks, and holds the GIL while it does: one request with `(a+)+$`
against a long name would stop the whole controller. RE2 (Google's engine, the
`google-re2` binding) guarantees time linear in the name and bounded memory, and
refuses what cannot be matched that way (backreferences, lookarounds, atomic and
possessive groups): a 400, as is any pattern RE2 cannot parse.
"""

from __future__ import annotations

import re2

from .errors import BadRequest
from .text import shown

MAX_PATTERN = 255
# RE2's memory budget for one compiled pattern; past it, compiling fails (a 400).
MAX_MEMORY = 1 << 20


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a tenant's bad pattern is a 400, not a line on stderr
    options.max_mem = MAX_MEMORY
    return options


OPTIONS = _options()


class NamePattern:
    """A compiled `?name=` filter; search(name) says whether it matches anywhere."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise BadRequest(f"Invalid name filter: longer than {MAX_PATTERN} characters.")
        try:
            self.compiled = re2.compile(pattern, options=OPTIONS)
        except re2.error as err:
            reason = err.args[0].decode(errors="replace") if err.args and isinstance(
                err.args[0], bytes) else str(err)
            raise BadRequest(f"Invalid regular expression for name {shown(pattern)}: "
                             f"{shown(reason)}.") from None

    def search(self, text: str) -> bool:
        return self.compiled.search(text) is not None
