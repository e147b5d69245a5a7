"""The bounded JSON parser of the API edge: depth, lone surrogates, encoding."""

from __future__ import annotations

import json
import time

import pytest

from atwill.core import json_edge
from atwill.core.errors import BadRequest


@pytest.mark.parametrize("raw", [
    b"[" * 10_000 + b"]" * 10_000,
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b"[" * (json_edge.MAX_DEPTH + 1) + b"]" * (json_edge.MAX_DEPTH + 1),
])
def test_deep_nesting_is_400(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="nested deeper"):
        json_edge.loads(raw)


def test_nesting_at_the_limit_parses() -> None:
    raw = b"[" * json_edge.MAX_DEPTH + b"]" * json_edge.MAX_DEPTH
    assert json_edge.loads(raw) is not None


def test_brackets_inside_strings_do_not_count() -> None:
    value = {"name": "[" * 1000 + '\\"{' * 100, "k": ["a\\\\", "]]]"]}
    assert json_edge.loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize("raw", [
    rb'{"name": "\ud800"}', rb'{"name": "a\udfffb"}', rb'{"\ud83d": 1}',
    rb'["\ud83d\u0041"]', rb'["\uD800"]', rb'["x\\\ud800"]',
])
def test_lone_surrogates_are_400(raw: bytes) -> None:
    with pytest.raises(BadRequest, match="surrogate"):
        json_edge.loads(raw)


@pytest.mark.parametrize("raw, value", [
    (rb'["\ud83d\ude00"]', ["\U0001f600"]),  # a valid pair is one character
    (rb'["\\ud800"]', ["\\ud800"]),  # an escaped backslash, then plain text
    ("[\"\U0001f600\"]".encode(), ["\U0001f600"]),
])
def test_real_text_parses(raw: bytes, value: object) -> None:
    assert json_edge.loads(raw) == value


@pytest.mark.parametrize("raw", [
    json.dumps({"a": "b"}).encode("utf-16"), b'{"a": NaN}', b'[Infinity]', b"{bad",
    b'["\xed\xa0\x80"]',
])
def test_other_bad_bodies_are_400(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        json_edge.loads(raw)


def test_a_body_at_the_size_limit_is_checked_quickly() -> None:
    raw = json.dumps({"a": [{"k": "v" * 50, "b": '"[\\'} for _ in range(8000)]}).encode()
    started = time.perf_counter()
    json_edge.check(raw)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("raw", [b'{"x": 1e999}', b'{"x": -1e999}', b'[1.5e400]',
                                 b'{"overlay": {"x": 1E+309}, "running_vms": 0}'])
def test_a_number_beyond_a_double_is_refused(raw: bytes) -> None:
    """Review finding: 1e999 read as infinity, which json.dumps writes as Infinity and
    PostgreSQL's json refuses: one node's lean heartbeat failed its whole flush (then
    retried beat by beat)."""
    with pytest.raises(BadRequest, match="out of range"):
        json_edge.loads(raw)


def test_large_finite_numbers_still_read() -> None:
    assert json_edge.loads(b'[1.7976931348623157e308, -2.5e-320, 1e2, 10]') == [
        1.7976931348623157e308, -2.5e-320, 100.0, 10]
