"""A template's parameter_groups, checked as Heat's ParameterGroups.validate: a list of
groups, each with a list of parameters, each parameter in one group only and declared."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import StackValidationFailed


def _failed(label: Any, message: str) -> StackValidationFailed:
    # Heat's HeatExceptionWithPath: "error: path: message", the path parameter_groups.label.
    return StackValidationFailed(
        f"Parameter Groups error: parameter_groups.{label}: {message}")


def check(groups: Any, declared: Iterable[str]) -> None:
    if not groups:
        return
    if not isinstance(groups, list):
        raise StackValidationFailed("Parameter Groups error: parameter_groups: The "
                                    "parameter_groups should be a list.")
    names, seen = set(declared), set()
    for group in groups:
        label = group.get("label", "") if isinstance(group, dict) else ""
        members = group.get("parameters") if isinstance(group, dict) else None
        if members is None:
            raise _failed(label, "The parameters must be provided for each parameter group.")
        if not isinstance(members, list):
            raise _failed(label, "The parameters of parameter group should be a list.")
        for param in members:
            if param in seen:
                raise _failed(label, f"The {param} parameter must be assigned to one "
                                     "parameter group only.")
            seen.add(param)
            if param not in names:
                raise _failed(label, f"The grouped parameter {param} does not reference a "
                                     "valid parameter.")
