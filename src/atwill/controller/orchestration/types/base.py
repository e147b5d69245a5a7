"""What every resource type offers the engine: a property schema, create, check, delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ....core.hot.errors import StackValidationFailed
from ..services import Api, ResourceFailure

KINDS = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
         "list": (list,), "map": (dict,), "any": (object,)}


@dataclass
class Prop:
    type: str = "string"
    required: bool = False
    default: Any = None
    update_allowed: bool = False
    description: str = ""
    allowed: tuple[Any, ...] = ()
    # Heat's range constraint; also what keeps one template from asking the controller for
    # a billion resources or a string of gigabytes.
    low: int | None = None
    high: int | None = None


@dataclass
class Made:
    """What a create (or update) left: the physical id and the attributes to remember."""

    physical_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scope:
    """Where a resource is being made: its stack, and the stack's other resources."""

    stack_name: str
    stack_id: str
    resource_name: str
    configs: dict[str, str] = field(default_factory=dict)
    project_id: str = ""
    # The files sent with the stack (nested templates), and how a nested stack made for
    # this resource is marked as the stack's child.
    files: dict[str, Any] = field(default_factory=dict)
    adopt: Callable[[str], Awaitable[None]] | None = None


class ResourceType:
    name = ""
    properties: dict[str, Prop] = {}
    attributes: dict[str, str] = {}
    # Property names whose change an update can apply in place (Heat's update_allowed).

    def check(self, resource: str, props: dict[str, Any], partial: bool = False) -> None:
        """Refuse unknown properties, missing required ones and wrong types, as Heat says."""
        where = f"resources.{resource}.properties"
        for key in props:
            if key not in self.properties:
                raise StackValidationFailed(f"Property error: {where}: Unknown Property {key}")
        for key, spec in self.properties.items():
            value = props.get(key)
            if value is None:
                if spec.required and not partial:
                    raise StackValidationFailed(
                        f"Property error: {where}: Property {key} not assigned")
                continue
            if _unresolved(value):
                continue
            kinds = KINDS[spec.type]
            bad_bool = isinstance(value, bool) and spec.type in ("integer", "number")
            if bad_bool or not isinstance(value, kinds):
                if spec.type in ("integer", "number") and _numeric(value):
                    continue
                if spec.type == "boolean" and str(value).lower() in ("true", "false"):
                    continue
                if spec.type == "string" and isinstance(value, int | float):
                    continue
                raise StackValidationFailed(f"Property error: {where}.{key}: Value "
                                            f"'{value}' is not a {spec.type}")
            if spec.allowed and value not in spec.allowed:
                raise StackValidationFailed(
                    f'Property error: {where}.{key}: "{value}" is not an allowed value '
                    f'[{", ".join(map(str, spec.allowed))}]')
            _check_range(f"{where}.{key}", value, spec)

    def with_defaults(self, props: dict[str, Any]) -> dict[str, Any]:
        out = {k: v.default for k, v in self.properties.items() if v.default is not None}
        out.update({k: v for k, v in props.items() if v is not None})
        for key, spec in self.properties.items():
            if key in out and spec.type == "boolean" and isinstance(out[key], str):
                out[key] = out[key].lower() == "true"
            if key in out and spec.type == "integer" and isinstance(out[key], str):
                out[key] = int(out[key])
        return out

    def reference(self, made: Made) -> Any:
        """What get_resource answers: the physical id, unless the type says otherwise."""
        return made.physical_id

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        raise NotImplementedError

    async def ready(self, api: Api, made: Made) -> bool:
        """Whether a made resource is complete (servers wait for ACTIVE)."""
        return True

    async def delete(self, api: Api, made: Made) -> None:
        return None

    async def deleted(self, api: Api, made: Made) -> bool:
        return True

    def replaces(self, props: dict[str, Any], changed: set[str]) -> bool:
        """Whether changes to update_allowed properties still need a replacement, as an
        update policy property may ask (OS::Nova::Server's user_data_update_policy)."""
        return False

    async def update(self, api: Api, made: Made, props: dict[str, Any],
                     changed: set[str], scope: Scope) -> Made:
        """Apply changed update_allowed properties in place; the default has nothing to do."""
        return Made(made.physical_id, dict(made.data))

    def attribute(self, made: Made, name: str) -> Any:
        if name == "show":
            return made.data.get("show", made.data)
        if name not in self.attributes and name not in made.data:
            raise ResourceFailure("InvalidTemplateAttribute",
                                  f"The Referenced Attribute ({name}) is incorrect.")
        return made.data.get(name)

    def schema(self) -> dict[str, Any]:
        """The resource type show body (properties and attributes)."""
        props = {name: {"type": p.type, "required": p.required, "update_allowed":
                        p.update_allowed, "description": p.description, "immutable": False,
                        **({"default": p.default} if p.default is not None else {})}
                 for name, p in self.properties.items()}
        attrs = {name: {"description": desc} for name, desc in self.attributes.items()}
        attrs["show"] = {"description": "Detailed information about resource."}
        return {"resource_type": self.name, "properties": props, "attributes": attrs,
                "support_status": {"status": "SUPPORTED", "version": None, "message": None,
                                   "previous_status": None}}


def _unresolved(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)).startswith(
        ("get_", "str_", "list_", "if", "repeat", "map_", "digest", "filter", "make_url",
         "equals", "contains", "yaql"))


def _numeric(value: Any) -> bool:
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _check_range(where: str, value: Any, spec: Prop) -> None:
    if spec.low is None and spec.high is None or not _numeric(value):
        return
    number = float(value)
    if (spec.low is not None and number < spec.low) or \
            (spec.high is not None and number > spec.high):
        raise StackValidationFailed(f"Property error: {where}: {value} is out of range "
                                    f"(min: {spec.low}, max: {spec.high})")
