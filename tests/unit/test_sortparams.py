"""Nova's sort_key/sort_dir pairing (core/sortparams.py)."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest, Forbidden
from atwill.core.sortparams import sort_pairs

VALID = ("display_name", "created_at", "host")


def test_pairs_default_desc_and_last_direction_repeats() -> None:
    assert sort_pairs(["display_name"], [], VALID) == [("display_name", "desc")]
    assert sort_pairs(["display_name", "created_at"], ["asc"], VALID) == [
        ("display_name", "asc"), ("created_at", "asc")]


def test_ignored_keys_are_dropped_unknown_ones_refused() -> None:
    assert sort_pairs(["vcpus", "created_at"], ["asc", "desc"], VALID, ("vcpus",)) == [
        ("created_at", "desc")]
    with pytest.raises(BadRequest, match="sort_key"):
        sort_pairs(["bogus"], [], VALID)


@pytest.mark.parametrize(("keys", "dirs"), [(["display_name"], ["up"]),
                                            (["display_name"], ["asc", "desc"])])
def test_bad_directions_are_400(keys: list[str], dirs: list[str]) -> None:
    with pytest.raises(BadRequest):
        sort_pairs(keys, dirs, VALID)


def test_admin_only_keys() -> None:
    with pytest.raises(Forbidden, match="host"):
        sort_pairs(["host"], [], VALID, admin_only=("host",))
    assert sort_pairs(["host"], [], VALID, admin_only=("host",), is_admin=True) == [
        ("host", "desc")]
