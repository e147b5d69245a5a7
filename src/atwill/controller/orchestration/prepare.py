"""A stack request read and checked: template, files, environment, parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from ...core.errors import BadRequest
from ...core.hot import nesting
from ...core.hot import params as hot_params
from ...core.hot import template as hot_template
from ...core.hot.errors import StackValidationFailed
from ..context import Controller
from . import constraints
from .scope import StackState, validate
from .types.nested import is_template_type

NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_.-]{0,254}")
ENV_KEYS = {"parameters", "parameter_defaults", "resource_registry", "event_sinks",
            "encrypted_param_names", "parameter_merge_strategies"}


@dataclass
class Prepared:
    template: dict[str, Any]
    files: dict[str, Any]
    environment: dict[str, Any]
    state: StackState
    active: list[str]


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise StackValidationFailed(
            f'Invalid stack name {name} must contain only alphanumeric or "_-." characters, '
            "must start with alpha and must be 255 characters or less.")
    return name


def check_timeout(value: Any) -> int | None:
    """timeout_mins as Heat's API reads it: a non-negative integer, or absent."""
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise BadRequest("Only integer is acceptable by 'timeout_mins'.") from None
    if number < 0:
        raise BadRequest("Only non-negative integer is acceptable by 'timeout_mins'.")
    return number


def load_template(raw: Any) -> dict[str, Any]:
    """The template as a mapping: heatclient sends a parsed object, others may send text."""
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise StackValidationFailed(f"Error parsing template: {err}") from None
    if not isinstance(raw, dict):
        raise StackValidationFailed("The template is not a JSON object or YAML mapping.")
    return raw


def load_environment(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return {}
    if isinstance(raw, str):
        try:
            raw = yaml.safe_load(raw) or {}
        except yaml.YAMLError as err:
            raise StackValidationFailed(f"Error parsing environment: {err}") from None
    if not isinstance(raw, dict):
        raise StackValidationFailed("The environment is not a JSON object or YAML mapping.")
    for key in raw:
        if key not in ENV_KEYS:
            raise StackValidationFailed(f"environment has wrong section \"{key}\"")
    return raw


def registry_types(tmpl: hot_template.Template, registry: dict[str, Any],
                   files: dict[str, Any] | None = None) -> None:
    """Apply resource_registry aliases: a type, or a template sent in the files."""
    for res in tmpl.resources.values():
        seen = set()
        while res.type in registry and res.type not in seen:
            seen.add(res.type)
            target = registry[res.type]
            if not isinstance(target, str):
                raise StackValidationFailed(
                    f"The resource_registry entry for {res.type} must name a type or a "
                    "template file.")
            if is_template_type(target) and target not in (files or {}):
                raise StackValidationFailed(
                    f"Could not fetch remote template \"{target}\": it is not in the files "
                    "sent with the stack.")
            res.type = target


def prepare(ctl: Controller, body: dict[str, Any], stack_id: str, name: str,
            project_id: str, user_id: str) -> Prepared:
    raw = load_template(body.get("template"))
    files = body.get("files") or {}
    if not isinstance(files, dict):
        raise StackValidationFailed("files must be a map of names to contents")
    env = load_environment(body.get("environment"))
    tmpl = hot_template.parse(raw)
    nesting.check(raw, files, env.get("resource_registry") or {})
    registry_types(tmpl, env.get("resource_registry") or {}, files)
    given = dict(env.get("parameters") or {})
    given.update(body.get("parameters") or {})
    values = hot_params.resolve(tmpl.parameters, given, env.get("parameter_defaults") or {})
    constraints.check(ctl, project_id, user_id, tmpl.parameters, values)
    disable = body.get("disable_rollback", True)
    state = StackState(stack_id, name, project_id, user_id, tmpl, values, files,
                       ctl.settings.region, bool(disable),
                       check_timeout(body.get("timeout_mins")), environment=env)
    return Prepared(raw, files, env, state, validate(state))
