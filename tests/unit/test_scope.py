"""The X-Scope header: parsing, the service of a path, peers that lack a service."""

from __future__ import annotations

import pytest

from atwill.core import scope
from atwill.core.errors import BadRequest


def test_parse_keeps_only_services_served_elsewhere() -> None:
    raw = '{"compute": "CloudOne", "image": "CloudTwo", "volumev3": " CloudThree "}'
    assert scope.parse(raw, local_name="CloudOne") == {"image": "CloudTwo",
                                                       "volume": "CloudThree"}
    assert scope.parse('{"image": "local"}') == {}
    assert scope.parse(None) == {} and scope.parse("  ") == {}


@pytest.mark.parametrize(("raw", "message"), [
    ("{not json", "must be a JSON object"),
    ('["image"]', "must be a JSON object"),
    ('{"baremetal": "CloudTwo"}', "names the service 'baremetal'"),
    ('{"image": 2}', "must be a string"),
    ('{"image": "' + "x" * 2000 + '"}', "longer than"),
])
def test_parse_refuses(raw: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        scope.parse(raw)


@pytest.mark.parametrize(("path", "service"), [
    ("/image/v2/images", "image"), ("/image", "image"), ("/compute/v2.1/servers", "compute"),
    ("/imagefoo", None), ("/cluster/v1/peers", None), ("/", None),
])
def test_service_of(path: str, service: str | None) -> None:
    assert scope.service_of(path) == service


def test_check_offered() -> None:
    known = {"CloudTwo": ["image", "compute"]}
    scope.check_offered({"image": "CloudTwo"}, known)
    with pytest.raises(BadRequest, match="not a peer of this cloud"):
        scope.check_offered({"image": "CloudNine"}, known)
    with pytest.raises(BadRequest, match="does not offer the network service"):
        scope.check_offered({"network": "CloudTwo"}, known)
