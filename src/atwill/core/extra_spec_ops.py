"""Nova's extra spec operators: how a flavor's wanted value is compared with a host's.

'<in> avx' (substring), '<all-in> a b', '<or> a <or> b', numeric '= 4' (at least),
'== 4', '!= 4', '>= 4', '<= 4', and string 's==', 's!=', 's<', 's<=', 's>', 's>='.
A value with no operator must equal the host's exactly.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any


def _num(compare: Callable[[float, float], bool]) -> Callable[[Any, Any], bool]:
    return lambda have, want: compare(float(have), float(want))


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": _num(operator.ge),  # Nova's '=' means "at least" for numbers
    "==": _num(operator.eq), "!=": _num(operator.ne),
    ">=": _num(operator.ge), "<=": _num(operator.le),
    "<in>": lambda have, want: want in have,
    "<all-in>": lambda have, wants: all(w in have for w in wants),
    "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le,
    "s>": operator.gt, "s>=": operator.ge,
}


def match(have: str | None, wanted: str) -> bool:
    """Whether a host's value satisfies a flavor's wanted expression."""
    words = wanted.split()
    op = words.pop(0) if words else None
    if op != "<or>" and op not in OPERATORS:
        return have == wanted
    if have is None or not words:
        return False
    if op == "<or>":
        return have in words[0::2]
    try:
        return OPERATORS[op](have, words if op == "<all-in>" else words[0])
    except ValueError:
        return False
