"""Nested stacks: OS::Heat::Stack, and template resources (a type that is a template file).

A child stack is made through the orchestration API as the parent's owner, then marked as
the parent's (hidden from `stack list`, deleted with it); its outputs are the attributes.
"""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from ....core.hot.errors import StackValidationFailed
from ..services import Api, ResourceFailure
from .base import Made, Prop, ResourceType, Scope

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".template")


def stacks_path(scope: Scope) -> str:
    return f"/orchestration/v1/{scope.project_id}/stacks"


class _Nested(ResourceType):
    """What both kinds share: make the child, wait for it, read its outputs, delete it."""

    async def make(self, api: Api, scope: Scope, template: Any, parameters: dict[str, Any],
                   files: dict[str, Any], timeout: Any = None) -> Made:
        name = f"{scope.stack_name}-{scope.resource_name}-{uuid.uuid4().hex[:12]}"
        body = {"stack_name": name, "template": template, "files": files,
                "parameters": {k: v for k, v in parameters.items() if v is not None},
                "disable_rollback": True}
        if timeout:
            body["timeout_mins"] = timeout
        made = (await api.post(stacks_path(scope), body))["stack"]
        if scope.adopt is not None:
            await scope.adopt(made["id"])
        return Made(made["id"], {"stack": f"{stacks_path(scope)}/{name}/{made['id']}",
                                 "outputs": {}})

    async def ready(self, api: Api, made: Made) -> bool:
        stack = (await api.get(made.data["stack"]))["stack"]
        status = stack["stack_status"]
        if status.endswith("IN_PROGRESS"):
            return False
        if status != "CREATE_COMPLETE":
            raise ResourceFailure("ResourceFailure", stack["stack_status_reason"])
        made.data["outputs"] = {o["output_key"]: o.get("output_value")
                                for o in stack.get("outputs") or []}
        return True

    async def delete(self, api: Api, made: Made) -> None:
        await api.delete(made.data["stack"])

    async def deleted(self, api: Api, made: Made) -> bool:
        return await api.get(made.data["stack"], ok_missing=True) is None

    def attribute(self, made: Made, name: str) -> Any:
        outputs = made.data.get("outputs") or {}
        if name == "outputs":
            return outputs
        if name in outputs:
            return outputs[name]
        return super().attribute(made, name)


class NestedStack(_Nested):
    name = "OS::Heat::Stack"
    properties = {"template": Prop("string", required=True), "parameters": Prop("map",
                                                                                default={}),
                  "timeout": Prop("integer"), "context": Prop("map")}
    attributes = {"outputs": "The nested stack's outputs, by key.",
                  "stack_name": "The nested stack's name."}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        made = await self.make(api, scope, props["template"], props["parameters"],
                               scope.files, props.get("timeout"))
        made.data["stack_name"] = made.data["stack"].rsplit("/", 2)[-2]
        return made


class TemplateResource(_Nested):
    """A resource whose type names a template in the stack's files; properties are its
    parameters."""

    def __init__(self, kind: str, text: Any) -> None:
        self.name = kind
        self.template = load(kind, text)
        params = self.template.get("parameters") or {}
        self.properties = {key: Prop("any", required="default" not in (spec or {}))
                           for key, spec in params.items()}
        self.attributes = {key: "An output of the template."
                           for key in self.template.get("outputs") or {}}

    async def create(self, api: Api, props: dict[str, Any], scope: Scope) -> Made:
        return await self.make(api, scope, self.template, props, scope.files)


def load(kind: str, text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        loaded = yaml.safe_load(str(text))
    except yaml.YAMLError as err:
        raise StackValidationFailed(f"Error parsing template {kind}: {err}") from None
    if not isinstance(loaded, dict):
        raise StackValidationFailed(f"The template {kind} is not a YAML mapping.")
    return loaded


def is_template_type(kind: str) -> bool:
    return kind.endswith(TEMPLATE_SUFFIXES)
