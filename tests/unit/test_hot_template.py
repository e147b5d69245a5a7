"""core/hot: template versions, sections, references and the dependency graph."""

from __future__ import annotations

import datetime as dt

import pytest

from atwill.core.hot import graph, template
from atwill.core.hot.errors import (
    CircularDependency,
    InvalidTemplateReference,
    InvalidTemplateVersion,
    StackValidationFailed,
)


def tmpl(version: object = "2018-08-31", **sections: object) -> dict:
    return {"heat_template_version": version, **sections}


@pytest.mark.parametrize("version,date", [
    ("2015-04-30", "2015-04-30"), (dt.date(2021, 4, 16), "2021-04-16"),
    ("rocky", "2018-08-31"), ("wallaby", "2021-04-16"), ("newton", "2016-10-14")])
def test_versions_by_date_and_name(version: object, date: str) -> None:
    assert template.parse(tmpl(version)).version == date


def test_unknown_version_and_missing_version() -> None:
    with pytest.raises(InvalidTemplateVersion, match="2099-01-01"):
        template.parse(tmpl("2099-01-01"))
    with pytest.raises(StackValidationFailed, match="Template format version not found"):
        template.parse({"resources": {}})


def test_conditions_section_only_from_2016_10_14() -> None:
    with pytest.raises(StackValidationFailed, match="section is invalid: conditions"):
        template.parse(tmpl("2016-04-08", conditions={"c": True}))
    assert template.parse(tmpl("2016-10-14", conditions={"c": True})).conditions == {"c": True}


def test_functions_refused_by_name_and_version() -> None:
    res = {"r": {"type": "OS::Heat::Value", "properties": {"value": {"yaql": {}}}}}
    with pytest.raises(StackValidationFailed, match='"yaql".*resources.r.properties.value'):
        template.parse(tmpl(resources=res))
    res = {"r": {"type": "OS::Heat::Value", "properties": {"value": {"if": [True, 1, 2]}}}}
    with pytest.raises(StackValidationFailed, match='"if".*2015-04-30'):
        template.parse(tmpl("2015-04-30", resources=res))
    res = {"r": {"type": "OS::Heat::Value", "properties": {"value": {"Fn::GetAZs": ""}}}}
    with pytest.raises(StackValidationFailed, match="Fn::GetAZs"):
        template.parse(tmpl(resources=res))


def test_references_to_missing_resources_and_parameters() -> None:
    res = {"r": {"type": "OS::Heat::Value", "properties": {"value": {"get_resource": "x"}}}}
    with pytest.raises(InvalidTemplateReference, match='"x" \\(in resources.r.properties'):
        template.parse(tmpl(resources=res))
    res = {"r": {"type": "OS::Heat::Value", "depends_on": "nope"}}
    with pytest.raises(InvalidTemplateReference, match='"nope"'):
        template.parse(tmpl(resources=res))
    res = {"r": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "p"}}}}
    with pytest.raises(StackValidationFailed, match=r"The Parameter \(p\) was not provided"):
        template.parse(tmpl(resources=res))


def test_resource_keywords_checked() -> None:
    with pytest.raises(StackValidationFailed, match='"propertes" is not a valid keyword'):
        template.parse(tmpl(resources={"r": {"type": "X", "propertes": {}}}))
    with pytest.raises(StackValidationFailed, match='missing "type"'):
        template.parse(tmpl(resources={"r": {"properties": {}}}))


def test_graph_orders_by_depends_on_and_references() -> None:
    res = {
        "net": {"type": "OS::Neutron::Net"},
        "sub": {"type": "OS::Neutron::Subnet", "properties": {"network": {"get_resource": "net"}}},
        "port": {"type": "OS::Neutron::Port", "properties": {
            "fixed_ips": [{"subnet": {"get_attr": ["sub", "name"]}}]}},
        "late": {"type": "OS::Heat::None", "depends_on": ["port"]},
    }
    deps = graph.dependencies(template.parse(tmpl(resources=res)))
    assert deps == {"net": set(), "sub": {"net"}, "port": {"sub"}, "late": {"port"}}
    assert graph.reverse(deps)["net"] == {"sub"}


def test_graph_refuses_a_cycle() -> None:
    res = {"a": {"type": "X", "depends_on": "b"}, "b": {"type": "X", "depends_on": "a"}}
    with pytest.raises(CircularDependency, match="Circular Dependency Found: a, b"):
        graph.dependencies(template.parse(tmpl(resources=res)))
