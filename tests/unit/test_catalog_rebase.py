"""core/catalog_rebase: each controller answers the catalog with its own URL, the public
interface with the load balancer's (public_endpoint) when set; other hosts untouched."""

from __future__ import annotations

import pytest

from atwill.config import load
from atwill.core.catalog_rebase import checked_public_endpoint, origin, rebase_for

CTL1, CTL2, LB = "https://ctl1.example:8686", "https://10.0.0.3:8686", "https://cloud.example"


def test_origin_is_scheme_and_netloc_lowercased() -> None:
    assert origin("HTTPS://Ctl1.Example:8686/compute/v2.1") == "https://ctl1.example:8686"
    assert origin("http://10.0.0.3") == "http://10.0.0.3"
    for bad in ("ftp://x", "https://", "not a url", "https://x:99999/"):
        assert origin(bad) is None


def test_a_controller_alone_answers_as_stored() -> None:
    rebase = rebase_for(CTL1, "", [])
    for interface in ("public", "internal", "admin"):
        assert rebase.url(f"{CTL1}/compute/v2.1", interface) == f"{CTL1}/compute/v2.1"


def test_the_second_controller_answers_with_its_own_url() -> None:
    # The rows name the first controller (its init); the second knows it from its bundle.
    rebase = rebase_for(CTL2, "", [CTL1, CTL2])
    for interface in ("public", "internal", "admin"):
        assert rebase.url(f"{CTL1}/image", interface) == f"{CTL2}/image"
    assert rebase.url(f"{CTL1}/orchestration/v1/%(project_id)s", "public") == \
        f"{CTL2}/orchestration/v1/%(project_id)s"


def test_the_public_endpoint_wins_on_the_public_interface_only() -> None:
    rebase = rebase_for(CTL2, LB, [CTL1, CTL2])
    assert rebase.url(f"{CTL1}/network", "public") == f"{LB}/network"
    assert rebase.url(f"{CTL1}/network", "internal") == f"{CTL2}/network"
    assert rebase.url(f"{CTL1}/network", "admin") == f"{CTL2}/network"
    # Rows written with the load balancer's URL (init with public_endpoint set) as well.
    assert rebase.url(f"{LB}/volume/v3", "internal") == f"{CTL2}/volume/v3"
    assert rebase.url(f"{LB}/volume/v3", "public") == f"{LB}/volume/v3"


def test_an_endpoint_on_another_host_is_answered_as_stored() -> None:
    rebase = rebase_for(CTL2, LB, [CTL1, CTL2])
    for url in ("https://swift.example:8080/v1/AUTH_%(project_id)s",
                "https://ctl1.example:9999/compute/v2.1",  # another port: another service
                "http://ctl1.example:8686/compute/v2.1"):  # another scheme
        assert rebase.url(url, "public") == url
    assert rebase.url("https://CTL1.example:8686/x", "public") == f"{LB}/x"


@pytest.mark.parametrize("value,expected", [
    ("", ""), ("https://cloud.example", "https://cloud.example"),
    ("https://cloud.example:8686/", "https://cloud.example:8686"),
    (" http://10.0.0.9:80 ", "http://10.0.0.9:80"), ("https://[fd00::1]:8686", "https://[fd00::1]:8686")])
def test_public_endpoint_accepted(value: str, expected: str) -> None:
    assert checked_public_endpoint(value) == expected


@pytest.mark.parametrize("value", [
    "cloud.example", "ftp://cloud.example", "https://", "https://cloud.example/atwill",
    "https://user@cloud.example", "https://cloud.example?x=1", "https://cloud.example#f",
    "https://cloud.example:99999", "https://cloud example", "https://" + "a" * 250 + ".x"])
def test_public_endpoint_refused_with_a_reason(value: str) -> None:
    with pytest.raises(ValueError, match="public_endpoint: expected"):
        checked_public_endpoint(value)


def test_a_bad_public_endpoint_in_the_settings_is_refused_at_load(tmp_path) -> None:
    (tmp_path / "atwill.yaml").write_text("public_endpoint: https://cloud.example/path\n")
    with pytest.raises(ValueError, match="public_endpoint: expected"):
        load(tmp_path)
    (tmp_path / "atwill.yaml").write_text("public_endpoint: https://cloud.example:8686/\n")
    assert load(tmp_path).public_endpoint == "https://cloud.example:8686"
