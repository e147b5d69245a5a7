"""The heartbeat lane decodes a beat's body as json_edge.loads does (the same value, or
the same 400), skipping json_edge's scan only where the scan cannot refuse it (issue 19:
the scan was a sixth of the lane's own CPU per beat)."""

from __future__ import annotations

from typing import Any

import pytest

from atwill.controller.cluster.heartbeat_lane import _decoded
from atwill.core import json_edge
from atwill.core.errors import BadRequest

BEAT = b'{"overlay":{},"running_vms":0,"instances":{},"host":{"uptime_s":12}}'
BODIES = [
    BEAT,
    b'{"host":{"name":"h\xc3\xa9"}}',  # UTF-8 text
    b"\xef\xbb\xbf" + BEAT,  # a BOM: json.loads of bytes strips it
    b'{"running_vms":NaN}', b'{"a":Infinity}', b'{"a":-Infinity}',
    b"[" * 32 + b"]" * 32,  # at the depth limit
    b"[" * 33 + b"]" * 33,  # over it
    b'{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',  # brackets in a string only
    b'{"a":"\\ud800"}',  # a lone surrogate escape
    b'{"a":"\\ud83d\\ude00"}',  # a valid pair
    b'{"a":"\\n\\"x"}',
    b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate (not UTF-8)
    b'{"a":"\xff"}',  # not UTF-8
    b'{"a":1}\x00',
    '{"a":1}'.encode("utf-16"),
    b'{"a":1} x', b"", b"{", b"1e999", b'{"a":123456789012345678901234567890}',
]


def _outcome(decode: Any, raw: bytes) -> tuple[str, Any]:
    try:
        return "value", decode(raw)
    except BadRequest as error:
        return "400", str(error)


@pytest.mark.parametrize("raw", BODIES)
def test_the_lane_decodes_as_json_edge_does(raw: bytes) -> None:
    expected = _outcome(json_edge.loads, raw)
    assert _outcome(_decoded, raw) == expected
    if raw in (BEAT, b"[" * 33 + b"]" * 33, b'{"a":"\\ud800"}', b'{"running_vms":NaN}'):
        assert expected[0] == ("value" if raw == BEAT else "400")  # the cases that matter


def test_the_lane_refuses_a_number_beyond_a_double() -> None:
    """A lean beat's body with 1e999 (no backslash, few brackets: the lane's own decoder)
    is a 400 as at the edge, not an infinity that fails the flush of every node's beat."""
    with pytest.raises(BadRequest, match="out of range"):
        _decoded(b'{"overlay": {"x": 1e999}, "running_vms": 0}')
