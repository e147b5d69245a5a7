"""core/controller_urls: what a controller lists for its agents, and what an agent keeps."""

from __future__ import annotations

import pytest

from atwill.core.controller_urls import MAX_URL_LENGTH, MAX_URLS, accepted, merged, valid


@pytest.mark.parametrize("url", [
    "https://ctl1.example:8686", "https://ctl1.example:8686/", "https://10.0.0.2:8686",
    "https://[fd00::1]:8686", "https://cloud.example"])
def test_valid_urls(url: str) -> None:
    assert valid(url)


@pytest.mark.parametrize("url", [
    "http://ctl1.example:8686", "ftp://ctl1.example", "https://", "https://:8686",
    "https://user@ctl1.example:8686", "https://ctl1.example:8686/path",
    "https://ctl1.example:8686?x=1", "https://ctl1.example:8686#f", "https://ctl1.example:99999",
    "https://ctl1.example:port", "https://ctl 1.example", "https://ctl1.example\n", "",
    "https://" + "a" * MAX_URL_LENGTH, 7, None])
def test_invalid_urls(url: object) -> None:
    assert not valid(url)


def test_an_agent_keeps_a_good_list_normalised_in_order() -> None:
    assert accepted(["https://b:1/", "https://a:1", "https://b:1"]) == ["https://b:1",
                                                                          "https://a:1"]


@pytest.mark.parametrize("urls", [
    None, [], "https://a:1", {"https://a:1": 1}, ["https://a:1", "http://b:1"],
    ["https://a:1", 7], [f"https://c{i}:1" for i in range(MAX_URLS + 1)]])
def test_an_agent_refuses_a_bad_list_whole(urls: object) -> None:
    assert accepted(urls) is None


def test_a_full_list_is_accepted() -> None:
    urls = [f"https://c{i}:1" for i in range(MAX_URLS)]
    assert accepted(urls) == urls


def test_the_list_is_the_same_whichever_controller_builds_it() -> None:
    registered = ["https://c:1", "https://a:1", "https://b:1"]
    seen = {tuple(merged([], reversed(registered), own)) for own in registered}
    assert seen == {("https://a:1", "https://b:1", "https://c:1")}


def test_configured_urls_come_first_then_the_registered_ones() -> None:
    got = merged(["https://lb:1/", " https://c:1"], ["https://b:1", "https://c:1"],
                 "https://b:1")
    assert got == ["https://lb:1", "https://c:1", "https://b:1"]


def test_own_url_before_its_first_registration_and_bad_ones_left_out() -> None:
    assert merged([], [], "https://a:1") == ["https://a:1"]
    assert merged(["http://x:1"], ["https://b:1", "https://u@c:1"], "https://a:1") == [
        "https://b:1", "https://a:1"]
    # A controller without TLS lists nothing an agent would take: the agent keeps its own.
    assert merged([], [], "http://a:1") == []


def test_at_most_max_urls() -> None:
    many = [f"https://c{i:02}:1" for i in range(MAX_URLS + 4)]
    assert merged([], many, "https://c00:1") == many[:MAX_URLS]
