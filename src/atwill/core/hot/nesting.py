"""How deep a template's nested stacks go, checked before anything is made.

Heat refuses a stack whose nested stacks go deeper than max_nested_stack_depth (5) with
RequestLimitExceeded. A template that includes itself, directly or through another, goes
deeper than any limit, so it is refused at create with the same 400 rather than made
level by level until the stack quota stops it.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..errors import BadRequest

MAX_DEPTH = 5  # Heat's max_nested_stack_depth default
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".template")


class RequestLimitExceeded(BadRequest):
    heat_type = "RequestLimitExceeded"


def too_deep(limit: int) -> RequestLimitExceeded:
    return RequestLimitExceeded(f"Request limit exceeded: Recursion depth exceeds {limit}.")


def check(template: dict[str, Any], files: dict[str, Any], registry: dict[str, Any],
          limit: int = MAX_DEPTH) -> None:
    """Raise RequestLimitExceeded if the nested stacks go more than limit levels down."""
    _Walk(files, registry, limit).height(template, (), 0)


class _Walk:
    def __init__(self, files: dict[str, Any], registry: dict[str, Any], limit: int) -> None:
        self.files, self.registry, self.limit = files or {}, registry or {}, limit
        # Each file's height is computed once: a template with many resources naming the
        # same file costs one walk of that file, not one per resource.
        self.known: dict[str, int] = {}

    def height(self, template: Any, path: tuple[str, ...], depth: int) -> int:
        """Levels of nested stacks below template (0: none)."""
        if depth > self.limit:
            raise too_deep(self.limit)
        resources = template.get("resources") if isinstance(template, dict) else None
        best = 0
        for res in (resources.values() if isinstance(resources, dict) else ()):
            for child in self.children(res):
                best = max(best, 1 + self.child_height(child, path, depth + 1))
                if depth + best > self.limit:
                    raise too_deep(self.limit)
        return best

    def child_height(self, child: Any, path: tuple[str, ...], depth: int) -> int:
        if not isinstance(child, str):
            return self.height(child, path, depth)
        if child in path:  # the template includes itself: deeper than any limit
            raise too_deep(self.limit)
        if child not in self.known:
            self.known[child] = self.height(_load(self.files[child]), (*path, child), depth)
        return self.known[child]

    def children(self, res: Any) -> list[Any]:
        """The templates a resource makes a nested stack of: file names or mappings."""
        if not isinstance(res, dict):
            return []
        kind, props = self.resolve(res.get("type")), res.get("properties")
        props = props if isinstance(props, dict) else {}
        if kind == "OS::Heat::ResourceGroup":
            member = props.get("resource_def")
            return self.children(member) if isinstance(member, dict) else []
        if kind == "OS::Heat::Stack":
            inline = props.get("template")
            if isinstance(inline, dict) and "get_file" in inline:
                name = inline["get_file"]
                return [name] if isinstance(name, str) and name in self.files else []
            if isinstance(inline, str):
                return [_load(inline)]
            return [inline] if isinstance(inline, dict) else []
        return [kind] if self.is_file(kind) else []

    def resolve(self, kind: Any) -> Any:
        seen: set[str] = set()
        while isinstance(kind, str) and kind in self.registry and kind not in seen:
            seen.add(kind)
            kind = self.registry[kind]
        return kind

    def is_file(self, name: Any) -> bool:
        return isinstance(name, str) and name.endswith(TEMPLATE_SUFFIXES) and (
            name in self.files)


def _load(text: Any) -> Any:
    if isinstance(text, dict):
        return text
    try:
        return yaml.safe_load(str(text))
    except yaml.YAMLError:
        return None  # the nested stack's own create says what is wrong with it
