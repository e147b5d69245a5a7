"""core/hot: parameters with Heat's constraint messages, intrinsic functions, conditions."""

from __future__ import annotations

from typing import Any

import pytest

from atwill.core.hot import params
from atwill.core.hot.conditions import Conditions
from atwill.core.hot.errors import (
    StackValidationFailed,
    UnknownUserParameter,
    UserParameterMissing,
)
from atwill.core.hot.functions import Evaluator


class Ctx:
    def __init__(self, values: dict[str, Any], conditions: dict[str, Any] | None = None):
        self.values = values
        self.conds = Conditions(conditions or {}, Evaluator(self))

    def param(self, name: str) -> Any:
        return self.values[name]

    def resource_id(self, name: str) -> Any:
        return f"id-{name}"

    def attr(self, name: str, attribute: str) -> Any:
        return {"first_address": "10.0.0.5", "nested": {"a": [1, 2]}}[attribute]

    def condition(self, name: str) -> bool:
        return self.conds(name)

    def file(self, name: str) -> str:
        return {"f.sh": "#!/bin/sh"}[name]


def schemas(**specs: dict) -> dict[str, params.Parameter]:
    return {n: params.schema(n, s) for n, s in specs.items()}


def test_parameter_types_and_defaults() -> None:
    got = params.resolve(schemas(
        n={"type": "number", "default": 3}, s={"type": "string"},
        lst={"type": "comma_delimited_list", "default": "a, b"},
        j={"type": "json", "default": '{"k": 1}'}, b={"type": "boolean", "default": "yes"}),
        {"s": "x"}, {"n": "7"})
    assert got == {"n": 7, "s": "x", "lst": ["a", "b"], "j": {"k": 1}, "b": True}


@pytest.mark.parametrize("spec,value,message", [
    ({"type": "number", "constraints": [{"range": {"min": 1, "max": 4}}]}, "9",
     "Parameter 'p' is invalid: 9 is out of range (min: 1, max: 4)"),
    ({"type": "string", "constraints": [{"length": {"min": 3}}]}, "ab",
     "Parameter 'p' is invalid: length (2) is out of range (min: 3, max: None)"),
    ({"type": "string", "constraints": [{"allowed_values": ["m1.small", "m1.large"]}]}, "x",
     "Parameter 'p' is invalid: \"x\" is not an allowed value [m1.small, m1.large]"),
    ({"type": "string", "constraints": [{"allowed_pattern": "[a-z]+",
                                         "description": "lower case only"}]}, "A1",
     "Parameter 'p' is invalid: lower case only"),
    ({"type": "number"}, "abc",
     "Parameter 'p' is invalid: could not convert string to float: 'abc'"),
])
def test_constraint_messages_as_heat(spec: dict, value: str, message: str) -> None:
    with pytest.raises(StackValidationFailed) as err:
        params.resolve(schemas(p=spec), {"p": value}, {})
    assert err.value.message == message


def test_missing_and_unknown_parameters() -> None:
    with pytest.raises(UserParameterMissing, match=r"The Parameter \(p\) was not provided."):
        params.resolve(schemas(p={"type": "string"}), {}, {})
    with pytest.raises(UnknownUserParameter, match=r"\(q\) was not defined in template"):
        params.resolve(schemas(p={"type": "string", "default": ""}), {"q": 1}, {})
    # parameter_defaults for parameters a template does not declare are ignored, as Heat.
    assert params.resolve(schemas(), {}, {"q": 1}) == {}


def test_functions() -> None:
    ev = Evaluator(Ctx({"name": "web", "ports": ["80", "443"], "cfg": {"a": {"b": 5}}}))
    assert ev({"get_param": "name"}) == "web"
    assert ev({"get_param": ["cfg", "a", "b"]}) == 5
    assert ev({"get_resource": "net"}) == "id-net"
    assert ev({"get_attr": ["srv", "nested", "a", 1]}) == 2
    assert ev({"str_replace": {"template": "$host:$hostport", "params": {
        "$host": {"get_attr": ["srv", "first_address"]}, "$hostport": 8080}}}) == "10.0.0.5:8080"
    assert ev({"list_join": ["-", ["a", "b"], [{"get_param": "name"}]]}) == "a-b-web"
    assert ev({"repeat": {"for_each": {"%p%": {"get_param": "ports"}},
                          "template": {"port": "%p%", "proto": "tcp"}}}) == [
        {"port": "80", "proto": "tcp"}, {"port": "443", "proto": "tcp"}]
    assert ev({"str_split": [",", "a,b,c", 1]}) == "b"
    assert ev({"map_merge": [{"a": 1}, {"b": 2}]}) == {"a": 1, "b": 2}
    assert ev({"get_file": "f.sh"}) == "#!/bin/sh"
    assert ev({"list_concat_unique": [["a"], ["a", "b"]]}) == ["a", "b"]


def test_conditions_and_if() -> None:
    ctx = Ctx({"env": "prod", "n": 2}, {
        "is_prod": {"equals": [{"get_param": "env"}, "prod"]},
        "not_prod": {"not": "is_prod"},
        "big_prod": {"and": ["is_prod", {"equals": [{"get_param": "n"}, 2]}]},
        "either": {"or": ["not_prod", False]},
        "loop": {"not": "loop"}})
    ev = Evaluator(ctx)
    assert ev({"if": ["is_prod", "large", "small"]}) == "large"
    # Only the chosen branch is evaluated.
    assert ev({"if": ["is_prod", "large", {"get_param": "missing"}]}) == "large"
    assert ctx.conds("big_prod") is True and ctx.conds("either") is False
    with pytest.raises(StackValidationFailed, match='Circular definition for condition "loop"'):
        ctx.conds("loop")
    with pytest.raises(StackValidationFailed, match='Invalid condition "nope"'):
        ev({"if": ["nope", 1, 2]})
