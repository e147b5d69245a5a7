"""Flavor validation (core/flavors.py) and limit/marker paging (core/pagination.py)."""

from __future__ import annotations

import pytest

from atwill.core import flavors
from atwill.core.errors import BadRequest
from atwill.core.pagination import MAX_LIMIT, page, parse_limit

BASE = {"name": "m1.small", "ram": 2048, "vcpus": 1, "disk": 20}


def test_defaults() -> None:
    values = flavors.parse_create(dict(BASE, id=None))
    assert values == {"name": "m1.small", "flavorid": None, "ram": 2048, "vcpus": 1,
                      "disk": 20, "ephemeral": 0, "swap": 0, "rxtx_factor": 1.0,
                      "is_public": True, "description": None}


@pytest.mark.parametrize(("given", "flavorid"), [
    ("auto", None), (None, None), ("abc-1", "abc-1"), (42, "42")])
def test_ids(given: object, flavorid: str | None) -> None:
    assert flavors.parse_create(dict(BASE, id=given))["flavorid"] == flavorid


def test_numeric_strings_are_accepted() -> None:
    values = flavors.parse_create(dict(BASE, ram="4096", vcpus="2",
                                       **{"os-flavor-access:is_public": "false"}))
    assert (values["ram"], values["vcpus"], values["is_public"]) == (4096, 2, False)


@pytest.mark.parametrize("change", [
    {"name": ""}, {"name": " pad"}, {"name": "x" * 256}, {"name": 5}, {"name": "a\nb"},
    {"ram": 0}, {"ram": -1}, {"ram": "lots"}, {"ram": True}, {"ram": 1.5}, {"ram": 2**31},
    {"vcpus": 0}, {"vcpus": None}, {"disk": -1}, {"swap": -5},
    {"OS-FLV-EXT-DATA:ephemeral": -1}, {"rxtx_factor": 0}, {"rxtx_factor": "x"},
    {"os-flavor-access:is_public": "maybe"}, {"id": " x"}, {"id": "a/b"}, {"id": ""},
    {"id": True}, {"description": 5},
])
def test_invalid(change: dict) -> None:
    with pytest.raises(flavors.InvalidFlavor):
        flavors.parse_create(dict(BASE, **change))


def test_extra_specs() -> None:
    assert flavors.parse_specs({"pci_passthrough:alias": "K20m:1", "hw:cpu_policy": "dedicated",
                                "n": 4, "b": True}) == {
        "pci_passthrough:alias": "K20m:1", "hw:cpu_policy": "dedicated", "n": "4", "b": "true"}
    for bad in ({}, [], {"bad key!": "x"}, {"k": "x" * 256}, {"k": None}, {"": "v"}):
        with pytest.raises(flavors.InvalidFlavor):
            flavors.parse_specs(bad)


def test_page_links_only_when_more_remain() -> None:
    items = [str(i) for i in range(5)]
    assert page(items, str, 2, None) == (["0", "1"], "1")
    assert page(items, str, 2, "1") == (["2", "3"], "3")
    assert page(items, str, 2, "3") == (["4"], None)
    assert page(items, str, 5, None) == (items, None)
    assert page(items, str, 0, None) == ([], None)
    with pytest.raises(BadRequest):
        page(items, str, 2, "nope")


def test_parse_limit() -> None:
    assert parse_limit(None) == MAX_LIMIT
    assert parse_limit("5") == 5
    assert parse_limit("999999") == MAX_LIMIT
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(BadRequest):
            parse_limit(bad)
