"""Server tags: Nova's validation and the four list filters."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest
from atwill.core.servertags import check_tag, check_tags, matches, parse_filters


@pytest.mark.parametrize("tag", ["a", "x" * 60, "with space", "ünï"])
def test_good_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "x" * 61, "a/b", "a,b", "tab\there"])
def test_bad_tags_have_novas_message(tag: str) -> None:
    with pytest.raises(BadRequest) as err:
        check_tag(tag)
    assert err.value.message.startswith(f"Tag '{tag}' is invalid. It must be a non empty "
                                        "string without characters '/' and ','.")


def test_tag_lists() -> None:
    assert check_tags(["b", "a", "b"]) == ["b", "a"]
    assert check_tags([f"t{i}" for i in range(50)])[-1] == "t49"
    for bad in ([f"t{i}" for i in range(51)], ["ok", "no/"], "a", [1], None):
        with pytest.raises(BadRequest):
            check_tags(bad)


@pytest.mark.parametrize(("query", "expected"), [
    ({"tags": "a,b"}, ["ab", "abc"]),
    ({"tags-any": "b,c"}, ["ab", "abc", "c"]),
    ({"not-tags": "a,b"}, ["none", "c"]),
    ({"not-tags-any": "a,c"}, ["none"]),
    ({"tags": "a", "not-tags-any": "c"}, ["ab"]),
    ({}, ["none", "ab", "abc", "c"]),
])
def test_filters(query: dict[str, str], expected: list[str]) -> None:
    servers = {"none": [], "ab": ["a", "b"], "abc": ["a", "b", "c"], "c": ["c"]}
    filters = parse_filters(query)
    assert [name for name, tags in servers.items() if matches(tags, filters)] == expected
