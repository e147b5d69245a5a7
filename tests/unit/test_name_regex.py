"""The `?name=` server filter: RE2 (re's syntax less backtracking), linear time."""

from __future__ import annotations

import re
import time

import pytest

from atwill.core.errors import BadRequest
from atwill.core.name_regex import NamePattern

NAMES = ["web-1", "web-12", "db", "", "Web-3", "a\nb", "x" * 255, "αβγ-9", "a.b", "foo bar"]


@pytest.mark.parametrize("pattern", [
    "web", "^web", "web-1$", "^web-[0-9]+$", r"\d+", r"^\w+-\d$", "b|db", "(web|db)-?1?",
    "a.b", r"a\.b", "[^a-z]", "^$", "x{3,5}", "x{255}$", "^(ab|a)*$", "(?i)web-3", "w?e*b+",
    "a[.]b", r"\s", "[α-γ]+", "(?s)a.b", "a.b", "^.*$", "1*?2", "o{2}", "[-a]", r"\bweb",
    "(?i:WEB)", "(?m)^b$", "a{1000}",
])
def test_same_answers_as_re(pattern: str) -> None:
    # RE2's \w, \d and \s are ASCII classes, as in the databases' REGEXP Nova relies on.
    compiled, ours = re.compile(pattern, re.ASCII), NamePattern(pattern)
    for name in NAMES:
        assert ours.search(name) == bool(compiled.search(name)), (pattern, name)


@pytest.mark.parametrize("pattern", ["(a+)+$", "^(a|aa)*$", "(.*a){12}$", "^(a*)*b$",
                                     ".*.*.*.*.*.*=$"])
def test_catastrophic_patterns_answer_quickly(pattern: str) -> None:
    name = "a" * 250 + "!"
    started = time.perf_counter()
    assert NamePattern(pattern).search(name) is False
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)", "(?<!a)b", "x" * 256, "(",
                                     "a{1001}", "(?>a)", "a++", "(x{1000}){1000}"])
def test_refused_patterns_are_400(pattern: str) -> None:
    with pytest.raises(BadRequest):
        NamePattern(pattern)
