"""Stack update: unchanged resources kept, allowed changes made in place, others replaced."""

from __future__ import annotations

from typing import Any

from ...core.errors import ApiError
from ...core.hot import graph
from ...core.hot import template as hot_template
from . import store
from .engine import Engine, failed_reason
from .prepare import registry_types
from .scope import StackState, type_named
from .services import Api, ResourceFailure


def changes(state: StackState, name: str, props: dict[str, Any]) -> tuple[str, set[str]]:
    """'keep', 'update' (in place) or 'replace', and the changed property names."""
    kind = state.tmpl.resources[name].type
    old_kind, old_props = state.stored[name]
    if old_kind != kind:
        return "replace", set()
    changed = {k for k in set(props) | set(old_props) if props.get(k) != old_props.get(k)}
    if not changed:
        return "keep", changed
    rtype = type_named(kind, state.files)
    allowed = all(k in rtype.properties and rtype.properties[k].update_allowed
                  for k in changed)
    return ("update" if allowed and not rtype.replaces(props, changed) else "replace"), changed


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
        old_kind, old_props = state.stored[name]
        state.replaced.append((name, old_kind, state.made.pop(name), old_props))
        await engine.db(store.retype, state.id, name, state.tmpl.resources[name].type)
        await engine.create_one(state, api, name)
        return
    await engine.db(store.set_resource, state.id, name, "UPDATE", "IN_PROGRESS",
                    "state changed")
    try:
        rtype.check(name, props)
        made = await rtype.update(api, state.made[name], props, changed,
                                  engine.scope(state, name))
    except (ResourceFailure, ApiError) as err:
        await engine.fail(state, name, "UPDATE", err, state.made[name], None)
    state.made[name] = made
    await engine.db(store.set_resource, state.id, name, "UPDATE", "COMPLETE", "state changed",
                    made=made, properties=props)


async def run(engine: Engine, stack_id: str, old: dict[str, Any]) -> None:
    """Update the stack to its stored template; on failure roll back to old, if asked."""
    state, _props = await engine.db(store.load, stack_id)
    api = await engine.api_for(state)
    try:
        engine.start_clock(state)
        failure = await engine.walk(state, api, state.active(),
                                    lambda s, a, n: update_one(engine, s, a, n))
        cancelled = engine.settle_cancel(stack_id)
        if failure is None:
            failure = await _retire(engine, state, api, old["template"], old["environment"])
        if not failure:
            await engine.db(store.set_stack, stack_id, "UPDATE", "COMPLETE",
                            "Stack UPDATE completed successfully")
            return
        reason = failed_reason("UPDATE", failure, cancelled)
        await engine.db(store.set_stack, stack_id, "UPDATE", "FAILED", reason)
        if cancelled or (cancelled is None and not state.disable_rollback):
            await rollback(engine, state, api, reason, old)
    finally:
        await api.close()


async def rollback(engine: Engine, failed: StackState, api: Api, reason: str,
                   old: dict[str, Any]) -> None:
    """Back to the template before the update: replaced resources put back, in-place changes
    undone, and what the update added deleted (Heat's ROLLBACK of an UPDATE)."""
    await engine.db(store.set_stack, failed.id, "ROLLBACK", "IN_PROGRESS", reason)
    failure = await _restore_replaced(engine, failed, api)
    if failure is None:
        await engine.db(store.restore_stack, failed.id, old)
        back, _props = await engine.db(store.load, failed.id)
        failure = await engine.walk(back, api, back.active(),
                                    lambda s, a, n: update_one(engine, s, a, n))
        if failure is None:
            failure = await _retire(engine, back, api, failed.tmpl.raw, failed.environment)
    if failure:
        await engine.db(store.set_stack, failed.id, "ROLLBACK", "FAILED",
                        f"Resource ROLLBACK failed: {failure}")
        return
    await engine.db(store.set_stack, failed.id, "ROLLBACK", "COMPLETE",
                    "Stack ROLLBACK completed successfully")


async def _restore_replaced(engine: Engine, state: StackState, api: Api) -> str | None:
    """Delete the successors an update made for replaced resources; put the old ones back."""
    for name, kind, made, props in state.replaced:
        successor = state.made.pop(name, None)
        try:
            if successor is not None:
                await _delete(engine, state, api, state.tmpl.resources[name].type,
                              successor)
        except (ResourceFailure, ApiError) as err:
            return f"{type(err).__name__}: resources.{name}: {getattr(err, 'message', err)}"
        await engine.db(store.restore_resource, state.id, name, kind, made, props)
    state.replaced.clear()
    return None


async def _delete(engine: Engine, state: StackState, api: Api, kind: str, made: Any) -> None:
    rtype = type_named(kind, state.files)
    await rtype.delete(api, made)
    await engine.until(state, lambda: rtype.deleted(api, made), abortable=False)


async def _retire(engine: Engine, state: StackState, api: Api, old_raw: dict[str, Any],
                  old_env: dict[str, Any]) -> str | None:
    """Delete what the new template dropped (in the old order) and what was replaced."""
    for name, kind, made, _props in state.replaced:
        try:
            await _delete(engine, state, api, kind, made)
        except (ResourceFailure, ApiError) as err:
            return f"{type(err).__name__}: resources.{name}: {getattr(err, 'message', err)}"
    state.replaced.clear()
    active = set(state.active())
    await engine.db(store.drop_resources, state.id,
                    [n for n in state.rows if n not in active and n not in state.made])
    dropped = [n for n in state.made if n not in active]
    if not dropped:
        return None
    old = hot_template.parse(old_raw)
    registry_types(old, old_env.get("resource_registry") or {}, state.files)
    retired = StackState(state.id, state.name, state.project_id, state.user_id, old,
                         state.values, state.files, state.region)
    retired.made = {n: state.made[n] for n in dropped}
    deps = graph.reverse(graph.dependencies(old, set(dropped)))
    failure = await engine.walk(retired, api, sorted(dropped), None, deps,
                                lambda n: engine.delete_one(retired, api, n, "DELETE"))
    if failure is None:
        await engine.db(store.drop_resources, state.id, dropped)
    return failure
