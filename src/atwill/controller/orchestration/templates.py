"""/validate and /resource_types: what a template asks for, and what atwill can make."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ...core.errors import NotFound
from ..service import controller, json_body
from .common import allow
from .prepare import prepare
from .types import REGISTRY

router = APIRouter()
KINDS = {"string": "String", "number": "Number", "json": "Json",
         "comma_delimited_list": "CommaDelimitedList", "boolean": "Boolean"}
CONSTRAINTS = {("range", "min"): "MinValue", ("range", "max"): "MaxValue",
               ("length", "min"): "MinLength", ("length", "max"): "MaxLength"}


def _parameter(param: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": KINDS[param.type], "Description": param.description,
                           "Label": param.label or param.name,
                           "NoEcho": "true" if param.hidden else "false"}
    if param.default is not None:
        out["Default"] = param.default
    for rule in param.constraints:
        for (kind, end), key in CONSTRAINTS.items():
            if kind in rule and rule[kind].get(end) is not None:
                out[key] = rule[kind][end]
        if "allowed_values" in rule:
            out["AllowedValues"] = rule["allowed_values"]
        if "allowed_pattern" in rule:
            out["AllowedPattern"] = rule["allowed_pattern"]
        if "custom_constraint" in rule:
            out["CustomConstraint"] = rule["custom_constraint"]
        if "description" in rule:
            out["ConstraintDescription"] = rule["description"]
    return out


@router.post("/v1/{project_id}/validate")
async def template_validate(project_id: str, request: Request) -> dict[str, Any]:
    creds = allow(request, project_id, "stacks:validate_template", False)
    body = await json_body(request)
    # Validation takes parameters it is not given: defaults stand in for what is missing.
    given = body.get("parameters") or {}
    ready = await run_in_threadpool(_checked, request, body, given, project_id, creds.user_id)
    out = {"Description": ready.state.tmpl.description or "No description",
           "Parameters": {n: _parameter(p) for n, p in ready.state.tmpl.parameters.items()}}
    if ready.state.tmpl.parameter_groups:
        out["ParameterGroups"] = ready.state.tmpl.parameter_groups
    return out


def _checked(request: Request, body: dict[str, Any], given: dict[str, Any],
             project_id: str, user_id: str) -> Any:
    from ...core.hot import template as hot_template
    from .prepare import load_template

    tmpl = hot_template.parse(load_template(body.get("template")))
    filled = {n: p.default if p.default is not None else _placeholder(p.type)
              for n, p in tmpl.parameters.items() if n not in given}
    return prepare(controller(request), {**body, "parameters": {**filled, **given}},
                   "validate", "validate", project_id, user_id)


def _placeholder(kind: str) -> Any:
    return {"number": 0, "json": {}, "comma_delimited_list": "", "boolean": False}.get(kind, "")


@router.get("/v1/{project_id}/resource_types")
def resource_types_list(project_id: str, request: Request) -> dict[str, Any]:
    allow(request, project_id, "stacks:list_resource_types", False)
    return {"resource_types": sorted(REGISTRY)}


@router.get("/v1/{project_id}/resource_types/{type_name}")
def resource_type_show(project_id: str, type_name: str, request: Request) -> dict[str, Any]:
    allow(request, project_id, "stacks:resource_schema", False)
    if type_name not in REGISTRY:
        raise NotFound(f"The Resource Type ({type_name}) could not be found.")
    return REGISTRY[type_name].schema()
