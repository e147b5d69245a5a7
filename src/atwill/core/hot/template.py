"""A HOT template read and checked as a whole before anything is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import groups, params, versions
from .errors import InvalidTemplateReference, StackValidationFailed
from .functions import function_of

SECTIONS = {"heat_template_version", "description", "parameter_groups", "parameters",
            "resources", "outputs"}
RESOURCE_KEYS = {"type", "properties", "metadata", "depends_on", "deletion_policy",
                 "update_policy", "condition", "external_id"}
PSEUDO = {"OS::stack_name", "OS::stack_id", "OS::project_id", "OS::region"}


@dataclass
class ResourceDef:
    name: str
    type: str
    properties: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    condition: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    deletion_policy: str = "Delete"


@dataclass
class Template:
    version: str
    description: str
    parameters: dict[str, params.Parameter]
    resources: dict[str, ResourceDef]
    outputs: dict[str, dict[str, Any]]
    conditions: dict[str, Any]
    parameter_groups: list[Any]
    raw: dict[str, Any]


def _map(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise StackValidationFailed(f'The template section is invalid: "{key}" must be a map')
    return value


def parse(raw: Any) -> Template:
    """A checked Template, or a 400 naming the first thing wrong."""
    if not isinstance(raw, dict):
        raise StackValidationFailed("The template is not a JSON object or YAML mapping.")
    if "heat_template_version" not in raw:
        raise StackValidationFailed("Template format version not found.")
    version = versions.resolve(raw["heat_template_version"])
    allowed = SECTIONS | ({"conditions"} if versions.has_conditions(version) else set())
    for section in raw:
        if section not in allowed:
            raise StackValidationFailed(f"The template section is invalid: {section}")
    schemas = {name: params.schema(name, spec)
               for name, spec in _map(raw, "parameters").items()}
    resources = {name: _resource(name, spec)
                 for name, spec in _map(raw, "resources").items()}
    outputs = _map(raw, "outputs")
    for name, out in outputs.items():
        if not isinstance(out, dict) or "value" not in out:
            raise StackValidationFailed(f'Each output definition must contain a "value" key. '
                                        f"(output {name})")
    groups.check(raw.get("parameter_groups"), schemas)
    tmpl = Template(version, str(raw.get("description", "")), schemas, resources, outputs,
                    _map(raw, "conditions"), raw.get("parameter_groups") or [], raw)
    _check_references(tmpl)
    return tmpl


def _resource(name: str, spec: Any) -> ResourceDef:
    if not isinstance(spec, dict):
        raise StackValidationFailed(f"Resource {name} definition must be a map.")
    for key in spec:
        if key not in RESOURCE_KEYS:
            raise StackValidationFailed(f'"{key}" is not a valid keyword inside a resource '
                                        f"definition ({name})")
    kind = spec.get("type")
    if not isinstance(kind, str) or not kind:
        raise StackValidationFailed(f'Resource {name} is missing "type"')
    props = spec.get("properties") or {}
    if not isinstance(props, dict):
        raise StackValidationFailed(f"Resource {name}: properties must be a map")
    deps = spec.get("depends_on") or []
    deps = [deps] if isinstance(deps, str) else deps
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise StackValidationFailed(f"Resource {name}: depends_on must be a name or a list")
    policy = spec.get("deletion_policy", "Delete")
    if policy not in ("Delete", "Retain", "Snapshot"):
        raise StackValidationFailed(f'Invalid deletion policy "{policy}"')
    return ResourceDef(name, kind, props, deps, spec.get("condition"),
                       spec.get("metadata") or {}, policy)


def calls(value: Any, where: str):
    """Every (function, argument, where) call in value, outermost first."""
    call = function_of(value)
    if call is not None:
        yield call[0], call[1], where
        yield from calls(call[1], where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (key.startswith("Fn::") or key == "Ref"):
                raise StackValidationFailed(f'The function "{key}" is not supported in HOT '
                                            f"templates (in {where})")
            yield from calls(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from calls(item, f"{where}[{index}]")


def _check_references(tmpl: Template) -> None:
    offered = versions.available(tmpl.version)
    places = [(f"resources.{r.name}.properties", r.properties) for r in tmpl.resources.values()]
    places += [(f"resources.{r.name}.metadata", r.metadata) for r in tmpl.resources.values()]
    places += [(f"outputs.{n}", o) for n, o in tmpl.outputs.items()]
    places += [(f"conditions.{n}", c) for n, c in tmpl.conditions.items()]
    for where, value in places:
        for name, arg, spot in calls(value, where):
            if name in versions.REFUSED:
                raise StackValidationFailed(f'The function "{name}" (in {spot}): '
                                            f"{versions.REFUSED[name]}.")
            if name not in offered:
                raise StackValidationFailed(
                    f'The function "{name}" (in {spot}) is not supported in '
                    f"heat_template_version {tmpl.version}.")
            _check_target(tmpl, name, arg, spot)
    for res in tmpl.resources.values():
        for dep in res.depends_on:
            if dep not in tmpl.resources:
                raise InvalidTemplateReference(
                    f'The specified reference "{dep}" (in {res.name}) is incorrect.')


def _check_target(tmpl: Template, name: str, arg: Any, where: str) -> None:
    target = None
    if name == "get_resource" and isinstance(arg, str):
        target = arg
    elif name == "get_attr" and isinstance(arg, list) and arg and isinstance(arg[0], str):
        target = arg[0]
    if target is not None and target not in tmpl.resources:
        raise InvalidTemplateReference(
            f'The specified reference "{target}" (in {where}) is incorrect.')
    if name == "get_param":
        param = arg if isinstance(arg, str) else (arg[0] if isinstance(arg, list) and arg
                                                   else None)
        if isinstance(param, str) and param not in tmpl.parameters and param not in PSEUDO:
            raise StackValidationFailed(f"The Parameter ({param}) was not provided.")
