"""A stack as the engine sees it: its template, parameters, conditions and made resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...core.hot import params as hot_params
from ...core.hot import template as hot_template
from ...core.hot.conditions import Conditions
from ...core.hot.errors import ResourceTypeNotFound, StackValidationFailed
from ...core.hot.functions import Evaluator
from .types import REGISTRY
from .types.base import Made, ResourceType
from .types.nested import TemplateResource, is_template_type


@dataclass
class StackState:
    id: str
    name: str
    project_id: str
    user_id: str
    tmpl: hot_template.Template
    values: dict[str, Any]
    files: dict[str, Any]
    region: str
    disable_rollback: bool = True
    timeout_mins: int | None = None
    # When the current action times out (the event loop's clock), if it may.
    deadline: float | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    # Every resource row the stack has, made or not.
    rows: set[str] = field(default_factory=set)
    made: dict[str, Made] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)
    # What each made resource was made as (type, properties): an update's baseline.
    stored: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # Resources an update replaced (name, type, made, properties): deleted once the update
    # has made their successors, or put back if it rolls back.
    replaced: list[tuple[str, str, Made, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.evaluate = Evaluator(self)
        self.conditions = Conditions(self.tmpl.conditions, self.evaluate)

    # The Context that intrinsic functions read.
    def param(self, name: str) -> Any:
        pseudo = hot_params.pseudo(self.name, self.id, self.project_id, self.region)
        if name in pseudo:
            return pseudo[name]
        if name not in self.values:
            raise StackValidationFailed(f"The Parameter ({name}) was not provided.")
        return self.values[name]

    def resource_id(self, name: str) -> Any:
        made = self.made.get(name)
        return self.type_of(name).reference(made) if made else None

    def attr(self, name: str, attribute: str) -> Any:
        made = self.made.get(name)
        return self.type_of(name).attribute(made, attribute) if made else None

    def condition(self, name: str) -> bool:
        return self.conditions(name)

    def file(self, name: str) -> str:
        if name not in self.files:
            raise StackValidationFailed(f"Could not fetch remote template \"{name}\": "
                                        "it is not in the files sent with the stack.")
        return str(self.files[name])

    def type_of(self, name: str) -> ResourceType:
        return type_named(self.tmpl.resources[name].type, self.files)

    def active(self) -> list[str]:
        """The resources whose condition holds (the others are not part of the stack)."""
        return [name for name, res in self.tmpl.resources.items()
                if self.conditions.holds(res.condition)]

    def outputs(self) -> list[dict[str, Any]]:
        out = []
        for key, spec in self.tmpl.outputs.items():
            entry = {"output_key": key, "description": spec.get("description",
                                                                "No description given")}
            try:
                holds = self.conditions.holds(spec.get("condition"))
                entry["output_value"] = self.evaluate(spec["value"]) if holds else None
            except Exception as err:  # noqa: BLE001 - an output's failure is shown, as Heat
                entry["output_value"] = None
                entry["output_error"] = getattr(err, "message", str(err))
            out.append(entry)
        return out


def type_named(kind: str, files: dict[str, Any] | None = None) -> ResourceType:
    """A registered type, or a template resource whose template came in the files."""
    if kind in REGISTRY:
        return REGISTRY[kind]
    if files and kind in files and is_template_type(kind):
        return TemplateResource(kind, files[kind])
    raise ResourceTypeNotFound(f"The Resource Type ({kind}) could not be found.")


def validate(state: StackState) -> list[str]:
    """Check every resource's type and properties before anything is made."""
    for res in state.tmpl.resources.values():
        rtype = type_named(res.type, state.files)
        rtype.check(res.name, res.properties)
    for name in state.tmpl.conditions:
        state.conditions(name)
    active = state.active()
    from ...core.hot import graph  # the graph also refuses cycles

    graph.dependencies(state.tmpl, set(active))
    return active
