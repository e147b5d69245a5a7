"""Nova's `?name=` server filter: a tenant's regular expression, matched in linear time.

Python's re backtracks, and holds the GIL while it does: one request with `(a+)+$`
against a long name would stop the whole controller. The pattern is parsed with
re's own parser (so the syntax is the one Nova users know) and run as a Thompson
NFA, whose cost is at most (states x name length). Constructs an NFA cannot
express (backreferences, lookarounds, word boundaries, scoped flags) are a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _constants as C  # noqa: N812 - re's own opcode names
from re import _parser as parser

from .errors import BadRequest
from .text import shown

MAX_PATTERN = 255
MAX_STATES = 512

Pred = Callable[[str], bool]
_CATEGORIES: dict[object, Pred] = {
    C.CATEGORY_DIGIT: str.isdigit, C.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    C.CATEGORY_SPACE: str.isspace, C.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    C.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    C.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}


class _Refused(Exception):
    """A construct the linear matcher does not take."""


class NamePattern:
    """A compiled `?name=` filter; search(name) says whether it matches anywhere."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN:
            raise BadRequest(f"Invalid name filter: longer than {MAX_PATTERN} characters.")
        try:
            parsed = parser.parse(pattern)
        except re.error:
            raise BadRequest(f"Invalid regular expression for name: {shown(pattern)}.") from None
        flags = parsed.state.flags
        self.fold = bool(flags & re.IGNORECASE)
        self.dotall = bool(flags & re.DOTALL)
        # States: ("char", pred, next) | ("split", nexts) | ("at", code, next) | ("match",)
        self.states: list[tuple] = [("match",)]
        try:
            if flags & re.MULTILINE:
                raise _Refused("the MULTILINE flag")
            self.start = self._seq(list(parsed), 0)
        except _Refused as err:
            raise BadRequest(f"Unsupported name filter {shown(pattern)}: {err} cannot be "
                             "used.") from None

    def _add(self, state: tuple) -> int:
        if len(self.states) >= MAX_STATES:
            raise _Refused("a pattern this large")
        self.states.append(state)
        return len(self.states) - 1

    def _seq(self, items: list, nxt: int) -> int:
        for op, av in reversed(items):
            nxt = self._one(op, av, nxt)
        return nxt

    def _one(self, op: object, av: object, nxt: int) -> int:  # noqa: PLR0911
        if op in (C.LITERAL, C.NOT_LITERAL, C.ANY, C.IN):
            return self._add(("char", self._pred(op, av), nxt))
        if op is C.SUBPATTERN:
            _group, add, remove, items = av  # type: ignore[misc]
            if add or remove:
                raise _Refused("a scoped flag")
            return self._seq(list(items), nxt)
        if op is C.BRANCH:
            return self._add(("split", [self._seq(list(alt), nxt) for alt in av[1]]))
        if op is C.AT and av in (C.AT_BEGINNING, C.AT_BEGINNING_STRING, C.AT_END,
                                 C.AT_END_STRING):
            return self._add(("at", av, nxt))
        if op in (C.MAX_REPEAT, C.MIN_REPEAT):
            return self._repeat(*av, nxt)  # type: ignore[misc]
        raise _Refused(str(op).lower().replace("_", " "))

    def _repeat(self, low: int, high: int, items: object, nxt: int) -> int:
        body = list(items)  # type: ignore[call-overload]
        if high == C.MAXREPEAT:
            loop = self._add(("split", []))
            self.states[loop] = ("split", [self._seq(body, loop), nxt])
            tail = loop
        else:
            tail = nxt
            for _ in range(high - low):
                tail = self._add(("split", [self._seq(body, tail), nxt]))
        for _ in range(low):
            tail = self._seq(body, tail)
        return tail

    def _pred(self, op: object, av: object) -> Pred:
        fold = str.lower if self.fold else (lambda c: c)
        if op is C.LITERAL:
            want = fold(chr(av))  # type: ignore[arg-type]
            return lambda c: fold(c) == want
        if op is C.NOT_LITERAL:
            avoid = fold(chr(av))  # type: ignore[arg-type]
            return lambda c: fold(c) != avoid
        if op is C.ANY:
            return (lambda c: True) if self.dotall else (lambda c: c != "\n")
        return self._char_class(list(av), fold)  # type: ignore[call-overload]

    def _char_class(self, items: list, fold: Callable[[str], str]) -> Pred:
        negate = bool(items) and items[0][0] is C.NEGATE
        tests: list[Pred] = []
        for op, av in items[1:] if negate else items:
            if op is C.LITERAL:
                tests.append(lambda c, w=fold(chr(av)): fold(c) == w)
            elif op is C.RANGE:
                tests.append(lambda c, lo=av[0], hi=av[1]: lo <= ord(c) <= hi or (
                    lo <= ord(c.swapcase()) <= hi if self.fold else False))
            elif op is C.CATEGORY and av in _CATEGORIES:
                tests.append(_CATEGORIES[av])
            else:
                raise _Refused(f"{str(op).lower()} in a character class")
        return lambda c: any(t(c) for t in tests) != negate

    def _closure(self, states: list[int], text: str, at: int) -> set[int]:
        seen: set[int] = set()
        stack = list(states)
        while stack:
            index = stack.pop()
            if index in seen:
                continue
            seen.add(index)
            state = self.states[index]
            if state[0] == "split":
                stack.extend(state[1])
            elif state[0] == "at" and _holds(state[1], text, at):
                stack.append(state[2])
        return seen

    def search(self, text: str) -> bool:
        current: set[int] = set()
        for at in range(len(text) + 1):
            current = self._closure([*current, self.start], text, at)
            if 0 in current:
                return True
            if at == len(text):
                return False
            char = text[at]
            current = {s[2] for s in map(self.states.__getitem__, current)
                       if s[0] == "char" and s[1](char)}
        return False


def _holds(code: object, text: str, at: int) -> bool:
    if code in (C.AT_BEGINNING, C.AT_BEGINNING_STRING):
        return at == 0
    if code is C.AT_END:
        return at == len(text) or (at == len(text) - 1 and text[-1] == "\n")
    return at == len(text)
