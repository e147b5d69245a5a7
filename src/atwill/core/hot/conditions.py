"""The conditions section: each name evaluated once, in terms of parameters and others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import StackValidationFailed


class Conditions:
    def __init__(self, definitions: dict[str, Any],
                 evaluate: Callable[[Any], Any]) -> None:
        self.definitions = definitions
        self.evaluate = evaluate
        self.values: dict[str, bool] = {}
        self.busy: set[str] = set()

    def __call__(self, name: str) -> bool:
        if name in self.values:
            return self.values[name]
        if name not in self.definitions:
            raise StackValidationFailed(f'Invalid condition "{name}"')
        if name in self.busy:
            raise StackValidationFailed(f'Circular definition for condition "{name}"')
        self.busy.add(name)
        spec = self.definitions[name]
        value = self(spec) if isinstance(spec, str) else self.evaluate(spec)
        self.busy.discard(name)
        if not isinstance(value, bool):
            raise StackValidationFailed(f'The definition of condition "{name}" is invalid: '
                                        "it is not a boolean")
        self.values[name] = value
        return value

    def holds(self, condition: Any) -> bool:
        """Whether a resource's or output's condition (a name, a boolean, an expression)."""
        if condition is None:
            return True
        if isinstance(condition, bool):
            return condition
        if isinstance(condition, str):
            return self(condition)
        return bool(self.evaluate(condition))
