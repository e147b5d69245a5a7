"""Template parameters: their schema, the values given, and Heat's constraint checks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import StackValidationFailed, UnknownUserParameter, UserParameterMissing

TYPES = ("string", "number", "json", "comma_delimited_list", "boolean")
KEYS = {"type", "default", "label", "description", "hidden", "constraints", "immutable",
        "tags"}
TRUE, FALSE = ("true", "1", "t", "yes", "y", "on"), ("false", "0", "f", "no", "n", "off")


@dataclass
class Parameter:
    name: str
    type: str
    default: Any = None
    description: str = ""
    label: str | None = None
    hidden: bool = False
    constraints: list[dict[str, Any]] = field(default_factory=list)

    def custom_constraints(self) -> list[str]:
        return [c["custom_constraint"] for c in self.constraints if "custom_constraint" in c]


def schema(name: str, spec: Any) -> Parameter:
    if not isinstance(spec, dict):
        raise StackValidationFailed(f"Invalid parameter {name}: the schema must be a map.")
    kind = spec.get("type")
    if kind not in TYPES:
        raise StackValidationFailed(f"Invalid type ({kind})" if kind else
                                    f'Missing parameter type for parameter: {name}')
    unknown = sorted(set(spec) - KEYS)
    if unknown:
        raise StackValidationFailed(f'Invalid key \'{unknown[0]}\' for parameter ({name})')
    constraints = spec.get("constraints") or []
    if not isinstance(constraints, list) or not all(isinstance(c, dict) for c in constraints):
        raise StackValidationFailed(f"Invalid parameter constraints for parameter {name}, "
                                    "expected a list")
    return Parameter(name, kind, spec.get("default"), str(spec.get("description", "")),
                     spec.get("label"), bool(spec.get("hidden", False)), constraints)


def coerce(param: Parameter, value: Any) -> Any:
    """The typed value of a given string or JSON value, or why it is not one."""
    kind = param.type
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError(f"Value '{value}' is not a number")
        if isinstance(value, int | float):
            return value
        try:
            number = float(str(value))
        except ValueError:
            raise ValueError(f"could not convert string to float: '{value}'") from None
        return int(number) if number.is_integer() and "." not in str(value) else number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in TRUE + FALSE:
            raise ValueError(f'Unrecognized value "{value}", acceptable values are: '
                             "true, false.")
        return text in TRUE
    if kind == "comma_delimited_list":
        if isinstance(value, list):
            return [str(v) for v in value]
        return [] if str(value) == "" else [v.strip() for v in str(value).split(",")]
    if kind == "json":
        if isinstance(value, dict | list):
            return value
        try:
            loaded = json.loads(str(value))
        except ValueError:
            raise ValueError(f"Value must be valid JSON: {value}") from None
        if not isinstance(loaded, dict | list):
            raise ValueError(f"Value must be valid JSON: {value}")
        return loaded
    if isinstance(value, dict | list):
        raise ValueError(f"Value must be a string; got {json.dumps(value)}")
    return str(value) if not isinstance(value, bool) else str(value).lower()


def _constraint_error(value: Any, kind: str, rule: dict[str, Any]) -> str | None:
    """Heat's message when value breaks one built-in constraint, None when it holds."""
    if "range" in rule:
        low, high = rule["range"].get("min"), rule["range"].get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{value} is out of range (min: {low}, max: {high})"
    elif "length" in rule:
        low, high = rule["length"].get("min"), rule["length"].get("max")
        size = len(value)
        if (low is not None and size < low) or (high is not None and size > high):
            return f"length ({size}) is out of range (min: {low}, max: {high})"
    elif "allowed_values" in rule:
        allowed = rule["allowed_values"]
        items = value if kind == "comma_delimited_list" else [value]
        bad = [v for v in items if v not in allowed and str(v) not in map(str, allowed)]
        if bad:
            return (f'"{bad[0]}" is not an allowed value '
                    f'[{", ".join(str(a) for a in allowed)}]')
    elif "allowed_pattern" in rule:
        if not re.fullmatch(str(rule["allowed_pattern"]), str(value)):
            return f'"{value}" does not match pattern "{rule["allowed_pattern"]}"'
    return None


def check(param: Parameter, value: Any) -> None:
    """Refuse a value that breaks a built-in constraint (custom ones are the caller's)."""
    for rule in param.constraints:
        problem = _constraint_error(value, param.type, rule)
        if problem:
            reason = rule.get("description") or problem
            raise StackValidationFailed(f"Parameter '{param.name}' is invalid: {reason}")


def resolve(schemas: dict[str, Parameter], given: dict[str, Any],
            defaults: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's typed value: given, else parameter_defaults, else the template's."""
    for name in given:
        if name not in schemas:
            raise UnknownUserParameter(f"The Parameter ({name}) was not defined in template.")
    values: dict[str, Any] = {}
    for name, param in schemas.items():
        raw = given.get(name, defaults.get(name, param.default))
        if raw is None:
            raise UserParameterMissing(f"The Parameter ({name}) was not provided.")
        try:
            value = coerce(param, raw)
        except ValueError as err:
            raise StackValidationFailed(f"Parameter '{name}' is invalid: {err}") from None
        check(param, value)
        values[name] = value
    return values


def pseudo(stack_name: str, stack_id: str, project_id: str, region: str) -> dict[str, Any]:
    """The OS:: pseudo parameters every template may read."""
    return {"OS::stack_name": stack_name, "OS::stack_id": stack_id,
            "OS::project_id": project_id, "OS::region": region}
