"""The `?name=` server filter: re's syntax, linear time, unsupported constructs refused."""

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
    "a[.]b", r"\s", "[α-γ]+", "(?s)a.b", "a.b", "^.*$", "1*?2", "o{2}", "[-a]", r"\Aweb\Z",
])
def test_same_answers_as_re(pattern: str) -> None:
    compiled, ours = re.compile(pattern), NamePattern(pattern)
    for name in NAMES:
        assert ours.search(name) == bool(compiled.search(name)), (pattern, name)


@pytest.mark.parametrize("pattern", ["(a+)+$", "^(a|aa)*$", "(.*a){12}$", "^(a*)*b$",
                                     ".*.*.*.*.*.*=$"])
def test_catastrophic_patterns_answer_quickly(pattern: str) -> None:
    name = "a" * 250 + "!"
    started = time.perf_counter()
    assert NamePattern(pattern).search(name) is False
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)", "(?<!a)b", r"\bweb", "x" * 256,
                                     "(?m)^a", "(?i:a)", "a{1000}", "(", "a**", "(?>a)", "a++"])
def test_refused_patterns_are_400(pattern: str) -> None:
    with pytest.raises(BadRequest):
        NamePattern(pattern)
