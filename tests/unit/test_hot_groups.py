"""parameter_groups checked as Heat's ParameterGroups.validate, with its messages."""

from __future__ import annotations

import pytest

from atwill.core.hot import template
from atwill.core.hot.errors import StackValidationFailed


def _tmpl(groups: object) -> dict:
    return {"heat_template_version": "2021-04-16", "parameter_groups": groups,
            "parameters": {"a": {"type": "string"}, "b": {"type": "string"}}}


def test_groups_naming_declared_parameters_once_pass() -> None:
    groups = [{"label": "one", "parameters": ["a"]}, {"parameters": ["b"]}]
    assert template.parse(_tmpl(groups)).parameter_groups == groups


@pytest.mark.parametrize(("groups", "message"), [
    ({"label": "x"}, "Parameter Groups error: parameter_groups: The parameter_groups should "
                     "be a list."),
    ([{"label": "x"}], "Parameter Groups error: parameter_groups.x: The parameters must be "
                       "provided for each parameter group."),
    ([{"label": "x", "parameters": "a"}], "Parameter Groups error: parameter_groups.x: The "
                                         "parameters of parameter group should be a list."),
    ([{"label": "x", "parameters": ["a"]}, {"label": "y", "parameters": ["a"]}],
     "Parameter Groups error: parameter_groups.y: The a parameter must be assigned to one "
     "parameter group only."),
    ([{"parameters": ["c"]}], "Parameter Groups error: parameter_groups.: The grouped "
                              "parameter c does not reference a valid parameter."),
])
def test_bad_groups_are_refused_as_heat(groups: object, message: str) -> None:
    with pytest.raises(StackValidationFailed) as caught:
        template.parse(_tmpl(groups))
    assert caught.value.message == message
