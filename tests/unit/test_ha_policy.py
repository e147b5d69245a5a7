"""The HA policy of a node from its groups (core/ha_policy) and its checks."""

from __future__ import annotations

import pytest

from atwill import config
from atwill.core import aggregates, ha_policy
from atwill.core.errors import BadRequest


@pytest.mark.parametrize(("values", "expected"), [
    ([], "evacuate"),
    ([None, "bogus"], "evacuate"),  # unknown values count as the default
    (["manual"], "manual"),
    (["evacuate", "manual"], "manual"),
    (["manual", "autonomous", "evacuate"], "autonomous"),
])
def test_the_least_automatic_policy_wins(values: list[str | None], expected: str) -> None:
    assert ha_policy.of_node(values, "evacuate") == expected


def test_the_default_applies_where_no_group_names_one() -> None:
    assert ha_policy.of_node([], "manual") == "manual"


def test_what_each_policy_does() -> None:
    assert [(ha_policy.fences(p), ha_policy.evacuates(p)) for p in ha_policy.POLICIES] == [
        (True, True), (True, False), (False, False)]
    assert "neither fenced nor evacuated" in ha_policy.why_not("autonomous", "n1")
    assert "atwill node evacuate n1" in ha_policy.why_not("manual", "n1")


def test_aggregate_metadata_refuses_an_unknown_policy() -> None:
    assert aggregates.metadata_changes({"ha_policy": "manual"}) == {"ha_policy": "manual"}
    assert aggregates.metadata_changes({"ha_policy": None}) == {"ha_policy": None}
    with pytest.raises(BadRequest, match="expected one of evacuate, manual, autonomous"):
        aggregates.metadata_changes({"ha_policy": "later"})


def test_the_setting_is_checked(tmp_path) -> None:
    assert config.load(tmp_path, ha_policy="autonomous").ha_policy == "autonomous"
    with pytest.raises(ValueError, match="ha_policy: expected one of"):
        config.load(tmp_path, ha_policy="maybe")


def test_ha_reserved_is_a_boolean_written_as_an_operator_may() -> None:
    assert aggregates.metadata_changes({"ha_reserved": "True"}) == {"ha_reserved": "true"}
    assert aggregates.metadata_changes({"ha_reserved": " no "}) == {"ha_reserved": "false"}
    assert aggregates.metadata_changes({"ha_reserved": None}) == {"ha_reserved": None}
    for bad in ("spare", "", 1):
        with pytest.raises(BadRequest, match="Invalid ha_reserved .*expected true or false"):
            aggregates.metadata_changes({"ha_reserved": bad})


def test_a_host_is_a_spare_when_any_of_its_aggregates_says_so() -> None:
    assert ha_policy.reserved({"ha_reserved": frozenset({"false", "true"})})
    assert not ha_policy.reserved({"ha_reserved": frozenset({"false"})})
    assert not ha_policy.reserved({})
