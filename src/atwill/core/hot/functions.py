"""Intrinsic functions of HOT, evaluated against what a stack knows at that moment."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Callable
from typing import Any, Protocol

from .errors import StackValidationFailed
from .versions import FUNCTIONS

# What one repeat may produce: a few long lists would otherwise multiply into millions.
MAX_REPEAT = 10_000


class Context(Protocol):
    """What a template's functions read: parameters, resources, conditions, files."""

    def param(self, name: str) -> Any: ...
    def resource_id(self, name: str) -> Any: ...
    def attr(self, name: str, attribute: str) -> Any: ...
    def condition(self, name: str) -> bool: ...
    def file(self, name: str) -> str: ...


def function_of(value: Any) -> tuple[str, Any] | None:
    """(name, argument) when value is a call of a known HOT function, else None."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key in FUNCTIONS:
            return key, arg
    return None


def text(value: Any) -> str:
    """How a value is spliced into a string: JSON for maps and lists, as Heat does."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def walk(value: Any, path: list[Any], what: str) -> Any:
    """Follow get_attr/get_param path elements (keys or indexes) into value."""
    for key in path:
        try:
            if isinstance(value, list):
                value = value[int(key)]
            elif isinstance(value, dict):
                value = value[key]
            else:
                return None
        except (KeyError, IndexError, ValueError, TypeError):
            raise StackValidationFailed(f'The path {path} of {what} does not exist.') from None
    return value


class Evaluator:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.table: dict[str, Callable[[Any], Any]] = {
            "get_param": self.get_param, "get_resource": self.get_resource,
            "get_attr": self.get_attr, "str_replace": self.str_replace,
            "str_replace_strict": self.str_replace, "str_replace_vstrict": self.str_replace,
            "list_join": self.list_join, "repeat": self.repeat, "if": self.if_,
            "equals": self.equals, "not": self.not_, "and": self.and_, "or": self.or_,
            "contains": self.contains, "get_file": self.get_file, "str_split": self.str_split,
            "map_merge": self.map_merge, "list_concat": self.list_concat,
            "list_concat_unique": self.list_concat_unique, "digest": self.digest,
            "filter": self.filter, "make_url": self.make_url, "map_replace": self.map_replace,
        }

    def __call__(self, value: Any) -> Any:
        call = function_of(value)
        if call is not None:
            name, arg = call
            if name not in self.table:
                raise StackValidationFailed(f'The function "{name}" is not supported.')
            return self.table[name](arg)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def get_param(self, arg: Any) -> Any:
        args = self(arg) if not isinstance(arg, str) else [arg]
        if not isinstance(args, list) or not args:
            raise StackValidationFailed("Arguments to \"get_param\" must be of the form: "
                                        "[param_name, path1, ..., pathN]")
        return walk(self.ctx.param(str(args[0])), args[1:], f"parameter {args[0]}")

    def get_resource(self, arg: Any) -> Any:
        return self.ctx.resource_id(str(self(arg)))

    def get_attr(self, arg: Any) -> Any:
        args = self(arg)
        if not isinstance(args, list) or len(args) < 2:
            raise StackValidationFailed("Arguments to \"get_attr\" must be of the form: "
                                        "[resource_name, attribute, (path), ...]")
        value = self.ctx.attr(str(args[0]), str(args[1]))
        return walk(value, args[2:], f"{args[0]}.{args[1]}")

    def str_replace(self, arg: Any) -> Any:
        if not isinstance(arg, dict) or "template" not in arg or "params" not in arg:
            raise StackValidationFailed('"str_replace" parameters must be a mapping with '
                                        '"template" and "params"')
        template, params = self(arg["template"]), self(arg["params"])
        if not isinstance(params, dict):
            raise StackValidationFailed('"str_replace": "params" must be a mapping')
        result = text(template)
        # Longer keys first, so that "$var_long" is not cut by "$var".
        for key in sorted(params, key=lambda k: -len(str(k))):
            result = result.replace(str(key), text(params[key]))
        return result

    def list_join(self, arg: Any) -> str:
        args = self(arg)
        if not isinstance(args, list) or not args:
            raise StackValidationFailed('Incorrect arguments to "list_join" should be: '
                                        "[delimiter, list, ...]")
        delimiter, parts = text(args[0]), []
        for chunk in args[1:]:
            if not isinstance(chunk, list):
                raise StackValidationFailed('Incorrect arguments to "list_join": '
                                            f'{text(chunk)} is not a list')
            parts += [text(p) for p in chunk]
        return delimiter.join(parts)

    def repeat(self, arg: Any) -> list[Any]:
        if not isinstance(arg, dict) or "for_each" not in arg or "template" not in arg:
            raise StackValidationFailed('"repeat" syntax should be {for_each: {var: list}, '
                                        "template: ...}")
        for_each = self(arg["for_each"])
        if not isinstance(for_each, dict) or not all(isinstance(v, list)
                                                     for v in for_each.values()):
            raise StackValidationFailed('The values of the "for_each" argument to "repeat" '
                                        "must be lists")
        keys = list(for_each)
        sizes = [len(for_each[k]) for k in keys]
        size = math.prod(sizes) if arg.get("permutations", True) else min(sizes, default=0)
        if size > MAX_REPEAT:
            raise StackValidationFailed(f'"repeat" would make {size} items (at most '
                                        f"{MAX_REPEAT})")
        if arg.get("permutations", True):
            combos = itertools.product(*(for_each[k] for k in keys))
        else:
            combos = zip(*(for_each[k] for k in keys), strict=False)
        return [self(_substitute(arg["template"], dict(zip(keys, combo, strict=True))))
                for combo in combos]

    def if_(self, arg: Any) -> Any:
        if not isinstance(arg, list) or len(arg) != 3:
            raise StackValidationFailed('Arguments to "if" must be of the form: '
                                        "[condition_name, value_if_true, value_if_false]")
        return self(arg[1]) if self.truth(arg[0]) else self(arg[2])

    def truth(self, cond: Any) -> bool:
        if isinstance(cond, str):
            return self.ctx.condition(cond)
        result = self(cond)
        if not isinstance(result, bool):
            raise StackValidationFailed(f"Invalid condition {text(cond)}: it is not a "
                                        "boolean")
        return result

    def equals(self, arg: Any) -> bool:
        args = self(arg)
        if not isinstance(args, list) or len(args) != 2:
            raise StackValidationFailed('Arguments to "equals" must be of the form: '
                                        "[value_1, value_2]")
        return args[0] == args[1]

    def not_(self, arg: Any) -> bool:
        return not self.truth(arg)

    def and_(self, arg: Any) -> bool:
        return all(self.truth(c) for c in _conditions_list(arg, "and"))

    def or_(self, arg: Any) -> bool:
        return any(self.truth(c) for c in _conditions_list(arg, "or"))

    def contains(self, arg: Any) -> bool:
        args = self(arg)
        if not isinstance(args, list) or len(args) != 2 or not isinstance(args[1], list):
            raise StackValidationFailed('Arguments to "contains" must be of the form: '
                                        "[value1, [value1, value2, value3]]")
        return args[0] in args[1]

    def get_file(self, arg: Any) -> str:
        return self.ctx.file(str(self(arg)))

    def str_split(self, arg: Any) -> Any:
        args = self(arg)
        if not isinstance(args, list) or len(args) not in (2, 3):
            raise StackValidationFailed('Incorrect arguments to "str_split" should be: '
                                        "[delimiter, string, (index)]")
        parts = text(args[1]).split(text(args[0]))
        return walk(parts, args[2:], "str_split")

    def map_merge(self, arg: Any) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for item in self(arg) or []:
            if not isinstance(item, dict):
                raise StackValidationFailed('Incorrect arguments to "map_merge": '
                                            f"{text(item)} is not a map")
            merged.update(item)
        return merged

    def list_concat(self, arg: Any) -> list[Any]:
        return [v for chunk in self(arg) or [] for v in (chunk or [])]

    def list_concat_unique(self, arg: Any) -> list[Any]:
        out: list[Any] = []
        for v in self.list_concat(arg):
            if v not in out:
                out.append(v)
        return out

    def digest(self, arg: Any) -> str:
        args = self(arg)
        known = hashlib.algorithms_available
        if not isinstance(args, list) or len(args) != 2 or args[0] not in known:
            raise StackValidationFailed('Arguments to "digest" must be [algorithm, value] '
                                        "with a known algorithm")
        return hashlib.new(args[0], text(args[1]).encode()).hexdigest()

    def filter(self, arg: Any) -> list[Any]:
        args = self(arg)
        return [v for v in (args[1] or []) if v not in (args[0] or [])]

    def make_url(self, arg: Any) -> str:
        parts = self(arg)
        url = f"{parts.get('scheme', 'http')}://{parts.get('host', '')}"
        if parts.get("port"):
            url += f":{parts['port']}"
        url += "/" + str(parts.get("path", "")).lstrip("/")
        if parts.get("query"):
            url += "?" + "&".join(f"{k}={v}" for k, v in parts["query"].items())
        return url + (f"#{parts['fragment']}" if parts.get("fragment") else "")

    def map_replace(self, arg: Any) -> dict[str, Any]:
        args = self(arg)
        source, keys = args[0], (args[1] or {}).get("keys", {})
        values = (args[1] or {}).get("values", {})
        return {keys.get(k, k): values.get(v, v) if isinstance(v, str) else v
                for k, v in source.items()}


def _conditions_list(arg: Any, name: str) -> list[Any]:
    if not isinstance(arg, list) or len(arg) < 2:
        raise StackValidationFailed(f'Arguments to "{name}" must be of the form: '
                                    "[condition_1, condition_2, ...]")
    return arg


def _substitute(template: Any, values: dict[str, Any]) -> Any:
    if isinstance(template, str):
        if template in values:
            return values[template]
        for key in sorted(values, key=lambda k: -len(k)):
            template = template.replace(key, text(values[key]))
        return template
    if isinstance(template, dict):
        return {_substitute(k, values): _substitute(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [_substitute(v, values) for v in template]
    return template
