"""Bounds that keep one template from exhausting the controller (review finding)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from atwill.controller.orchestration.types import REGISTRY
from atwill.core.hot.errors import StackValidationFailed
from atwill.core.hot.functions import MAX_REPEAT, Evaluator
from tests.unit.test_hot_functions import Ctx


@pytest.mark.parametrize(("kind", "props", "message"), [
    ("OS::Heat::ResourceGroup", {"count": 100_000_000,
                                 "resource_def": {"type": "OS::Heat::None"}},
     "count: 100000000 is out of range (min: 0, max: 1000)"),
    ("OS::Heat::ResourceGroup", {"count": -1, "resource_def": {"type": "OS::Heat::None"}},
     "count: -1 is out of range"),
    ("OS::Heat::RandomString", {"length": 10_000_000_000}, "length: 10000000000 is out of"),
    ("OS::Heat::RandomString", {"length": 0}, "length: 0 is out of range (min: 1"),
])
def test_sizes_past_heats_ranges_are_refused(kind: str, props: dict[str, Any],
                                             message: str) -> None:
    with pytest.raises(StackValidationFailed, match=re.escape(message)):
        REGISTRY[kind].check("r", props)


def test_sizes_within_range_pass() -> None:
    REGISTRY["OS::Heat::ResourceGroup"].check(
        "r", {"count": 1000, "resource_def": {"type": "OS::Heat::None"}})
    REGISTRY["OS::Heat::RandomString"].check("r", {"length": 512})


def test_a_repeat_that_would_multiply_into_millions_is_refused() -> None:
    ev = Evaluator(Ctx({}))
    many = list(range(1000))
    with pytest.raises(StackValidationFailed, match=f"at most {MAX_REPEAT}"):
        ev({"repeat": {"for_each": {"%a%": many, "%b%": many}, "template": "%a%-%b%"}})
    assert len(ev({"repeat": {"for_each": {"%a%": many, "%b%": many}, "template": "%a%",
                              "permutations": False}})) == 1000
