"""Template resources found in the files heatclient sends, and wait condition signals."""

from __future__ import annotations

import pytest
import yaml

from atwill.controller.orchestration.prepare import registry_types
from atwill.controller.orchestration.scope import type_named
from atwill.controller.orchestration.types.nested import TemplateResource
from atwill.controller.orchestration.types.wait import normalised
from atwill.core.hot import template as hot_template
from atwill.core.hot.errors import StackValidationFailed

URL = "file:///tmp/t/net.yaml"
NESTED = yaml.safe_dump({"heat_template_version": "2021-04-16",
                         "parameters": {"label": {"type": "string"},
                                        "size": {"type": "number", "default": 1}},
                         "resources": {"net": {"type": "OS::Neutron::Net"}},
                         "outputs": {"name": {"value": {"get_attr": ["net", "name"]}}}})


def test_a_type_naming_a_sent_template_is_a_template_resource() -> None:
    rtype = type_named(URL, {URL: NESTED})
    assert isinstance(rtype, TemplateResource)
    assert rtype.properties["label"].required and not rtype.properties["size"].required
    assert set(rtype.attributes) == {"name"}
    rtype.check("direct", {"label": "x"})
    with pytest.raises(StackValidationFailed, match="Unknown Property colour"):
        rtype.check("direct", {"label": "x", "colour": "red"})
    with pytest.raises(StackValidationFailed, match="could not be found"):
        type_named(URL, {})


def test_the_registry_maps_a_type_to_a_sent_template_or_says_it_is_missing() -> None:
    tmpl = hot_template.parse({"heat_template_version": "2021-04-16", "resources": {
        "a": {"type": "My::Net", "properties": {"label": "x"}}}})
    registry_types(tmpl, {"My::Net": URL}, {URL: NESTED})
    assert tmpl.resources["a"].type == URL
    again = hot_template.parse({"heat_template_version": "2021-04-16", "resources": {
        "a": {"type": "My::Net"}}})
    with pytest.raises(StackValidationFailed, match="not in the files sent"):
        registry_types(again, {"My::Net": URL}, {})


def test_signals_are_filled_in_as_heat_and_odd_statuses_refused() -> None:
    assert normalised({}, 2) == {"reason": "Signal 3 received", "data": None, "id": "3",
                                 "status": "SUCCESS"}
    assert normalised({"status": "FAILURE", "reason": "disk"}, 0)["reason"] == "disk"
    for bad in ({"status": "MAYBE"}, ["SUCCESS"]):
        with pytest.raises(ValueError, match="Metadata format invalid"):
            normalised(bad, 0)
