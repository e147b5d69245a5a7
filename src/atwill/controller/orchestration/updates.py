"""Stack update: unchanged resources kept, allowed changes made in place, others replaced."""

from __future__ import annotations

from typing import Any

from ...core.errors import ApiError
from ...core.hot import graph
from ...core.hot import template as hot_template
from . import store
from .engine import Engine
from .prepare import registry_types
from .scope import StackState, type_named
from .services import Api, ResourceFailure
from .types.base import Scope


def changes(state: StackState, name: str, props: dict[str, Any]) -> tuple[str, set[str]]:
    """'keep', 'update' (in place) or 'replace', and the changed property names."""
    kind = state.tmpl.resources[name].type
    old_kind, old_props = state.stored[name]
    if old_kind != kind:
        return "replace", set()
    changed = {k for k in set(props) | set(old_props) if props.get(k) != old_props.get(k)}
    if not changed:
        return "keep", changed
    rtype = type_named(kind)
    allowed = all(k in rtype.properties and rtype.properties[k].update_allowed
                  for k in changed)
    return ("update" if allowed else "replace"), changed


async def update_one(engine: Engine, state: StackState, api: Api, name: str) -> None:
    if name not in state.made:
        await engine.create_one(state, api, name)
        return
    rtype = state.type_of(name)
    props = rtype.with_defaults(state.evaluate(state.tmpl.resources[name].properties))
    how, changed = changes(state, name, props)
    if how == "keep":
        return
    if how == "replace":
        state.replaced.append((state.stored[name][0], state.made.pop(name)))
        await engine.db(store.retype, state.id, name, state.tmpl.resources[name].type)
        await engine.create_one(state, api, name)
        return
    await engine.db(store.set_resource, state.id, name, "UPDATE", "IN_PROGRESS",
                    "state changed")
    try:
        rtype.check(name, props)
        made = await rtype.update(api, state.made[name], props, changed,
                                  Scope(state.name, state.id, name, state.configs))
    except (ResourceFailure, ApiError) as err:
        await engine.fail(state, name, "UPDATE", err, state.made[name], None)
    state.made[name] = made
    await engine.db(store.set_resource, state.id, name, "UPDATE", "COMPLETE", "state changed",
                    made=made, properties=props)


async def run(engine: Engine, stack_id: str, old_raw: dict[str, Any],
              old_env: dict[str, Any]) -> None:
    state, _props = await engine.db(store.load, stack_id)
    api = await engine.api_for(state)
    try:
        failure = await engine.walk(state, api, state.active(),
                                    lambda s, a, n: update_one(engine, s, a, n))
        if failure is None:
            failure = await _retire(engine, state, api, old_raw, old_env)
    finally:
        await api.close()
    if failure:
        await engine.db(store.set_stack, stack_id, "UPDATE", "FAILED",
                        f"Resource UPDATE failed: {failure}")
    else:
        await engine.db(store.set_stack, stack_id, "UPDATE", "COMPLETE",
                        "Stack UPDATE completed successfully")


async def _retire(engine: Engine, state: StackState, api: Api, old_raw: dict[str, Any],
                  old_env: dict[str, Any]) -> str | None:
    """Delete what the new template dropped (in the old order) and what was replaced."""
    for kind, made in state.replaced:
        try:
            rtype = type_named(kind)
            await rtype.delete(api, made)
            await engine.until(state, lambda r=rtype, m=made: r.deleted(api, m),
                               abortable=False)
        except (ResourceFailure, ApiError) as err:
            return f"{type(err).__name__}: {getattr(err, 'message', err)}"
    dropped = [n for n in state.made if n not in state.active()]
    if not dropped:
        return None
    old = hot_template.parse(old_raw)
    registry_types(old, old_env.get("resource_registry") or {})
    retired = StackState(state.id, state.name, state.project_id, state.user_id, old,
                         state.values, state.files, state.region)
    retired.made = {n: state.made[n] for n in dropped}
    deps = graph.reverse(graph.dependencies(old, set(dropped)))
    failure = await engine.walk(retired, api, sorted(dropped), None, deps,
                                lambda n: engine.delete_one(retired, api, n, "DELETE"))
    if failure is None:
        await engine.db(store.drop_resources, state.id, dropped)
    return failure
