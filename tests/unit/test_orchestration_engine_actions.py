"""The engine's stack timeout, update rollback and cancel, with an in-memory resource type.

The engine runs against a real database (SQLite and PostgreSQL); resources are made in a
dict, so every step is instant and a timeout of one "minute" is 0.3 s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from atwill.controller.db.orchestration import Stack, StackEvent, StackResource
from atwill.controller.db.session import Database
from atwill.controller.orchestration import stacks, updates
from atwill.controller.orchestration.engine import Engine
from atwill.controller.orchestration.prepare import prepare
from atwill.controller.orchestration.services import ResourceFailure
from atwill.controller.orchestration.types import REGISTRY
from atwill.controller.orchestration.types.base import Made, Prop, ResourceType
from tests.unit.migrated_copies import MigratedTemplate, migrated_template


class Thing(ResourceType):
    """v changes in place; w needs a replacement; fail refuses; wait is never ready."""

    name = "Test::Thing"
    properties = {"v": Prop("integer", update_allowed=True), "w": Prop("integer"),
                  "fail": Prop("boolean", default=False), "wait": Prop("boolean",
                                                                       default=False)}

    def __init__(self) -> None:
        self.cloud: dict[str, dict[str, Any]] = {}

    async def create(self, api: Any, props: dict[str, Any], scope: Any) -> Made:
        if props["fail"]:
            raise ResourceFailure("BadRequest", "refused")
        made = Made(uuid.uuid4().hex, {})
        self.cloud[made.physical_id] = {"v": props.get("v"), "w": props.get("w")}
        if props["wait"]:
            self.cloud[made.physical_id]["waits"] = True
        return made

    async def ready(self, api: Any, made: Made) -> bool:
        return not self.cloud[made.physical_id].get("waits")

    async def update(self, api: Any, made: Made, props: dict[str, Any], changed: set[str],
                     scope: Any) -> Made:
        self.cloud[made.physical_id]["v"] = props.get("v")
        return made

    async def delete(self, api: Any, made: Made) -> None:
        self.cloud.pop(made.physical_id, None)


class FakeApi:
    async def close(self) -> None:
        return None


@pytest.fixture
def thing(monkeypatch: pytest.MonkeyPatch) -> Thing:
    made = Thing()
    monkeypatch.setitem(REGISTRY, Thing.name, made)
    return made


@pytest.fixture(scope="module")
def migrated(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedTemplate]:
    yield from migrated_template(engine, tmp_path_factory.mktemp("template"))


@pytest.fixture
def db(migrated: MigratedTemplate, tmp_path: Path) -> Iterator[Database]:
    """A copy of the module's migrated database (tests/unit/migrated_copies.py)."""
    yield from migrated.copy(tmp_path)


@pytest.fixture
def eng(db: Database) -> Engine:
    ctl = SimpleNamespace(db=db, settings=SimpleNamespace(region="RegionOne"),
                          base_url="http://ctl")
    eng = Engine(ctl)  # type: ignore[arg-type]

    async def api_for(_state: Any) -> FakeApi:
        return FakeApi()

    eng.api_for = api_for  # type: ignore[method-assign]
    eng.minute = 0.3
    return eng


def template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"heat_template_version": "2021-04-16", "resources": {
        name: {"type": Thing.name, "properties": props} for name, props in resources.items()}}


def create(eng: Engine, body: dict[str, Any]) -> str:
    ready = prepare(eng.ctl, body, str(uuid.uuid4()), "s", "p", "u")
    with eng.ctl.db.session() as session:
        session.add(Stack(id=ready.state.id, name="s", project_id="p", user_id="u",
                          template=ready.template, files={}, environment={},
                          parameters=ready.state.values, timeout_mins=ready.state.timeout_mins,
                          disable_rollback=ready.state.disable_rollback))
        session.flush()
        for name in ready.active:
            session.add(StackResource(stack_id=ready.state.id, name=name, type=Thing.name))
    asyncio.run(eng.create(ready.state.id))
    return ready.state.id


def update(eng: Engine, stack_id: str, body: dict[str, Any]) -> None:
    with eng.ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        old = {"template": dict(stack.template), "environment": {}, "files": {},
               "parameters": dict(stack.parameters)}
        ready = prepare(eng.ctl, body, stack_id, "s", "p", "u")
        stacks._apply(session, stack, ready, body)

    async def run() -> None:
        task = asyncio.ensure_future(updates.run(eng, stack_id, old))
        cancelled = False
        while not task.done():
            await asyncio.sleep(0.01)
            waits = any(t.get("waits") for t in REGISTRY[Thing.name].cloud.values())
            if waits and not cancelled:  # as a user would: once, while it is in progress
                eng.cancel(stack_id, rollback=True)
                cancelled = True
        await task

    asyncio.run(run())


def status(eng: Engine, stack_id: str) -> tuple[str, str, dict[str, tuple[str, str]]]:
    with eng.ctl.db.session() as session:
        stack = session.get(Stack, stack_id)
        rows = session.scalars(select(StackResource).where(StackResource.stack_id == stack_id))
        return (f"{stack.action}_{stack.status}", stack.status_reason,
                {r.name: (f"{r.action}_{r.status}", r.physical_id) for r in rows})


def stack_events(eng: Engine, stack_id: str) -> list[str]:
    with eng.ctl.db.session() as session:
        rows = session.scalars(select(StackEvent).where(
            StackEvent.stack_id == stack_id, StackEvent.resource_name == "s").order_by(
            StackEvent.seq))
        return [f"{e.action}_{e.status}" for e in rows]


def test_a_stack_that_outlives_timeout_mins_fails_timed_out(eng: Engine,
                                                              thing: Thing) -> None:
    body = {"template": template(slow={"v": 1, "wait": True}), "timeout_mins": 1}
    stack_id = create(eng, body)
    state, reason, rows = status(eng, stack_id)
    assert (state, reason) == ("CREATE_FAILED", "Create timed out")
    assert rows["slow"][0] == "CREATE_FAILED"
    # With rollback enabled, what the timed-out create made is removed.
    stack_id = create(eng, {**body, "disable_rollback": False})
    state, reason, rows = status(eng, stack_id)
    assert state == "ROLLBACK_COMPLETE" and rows == {}
    assert len(thing.cloud) == 1  # only the first stack's (no rollback) is left


def test_bad_timeout_mins_are_refused(eng: Engine) -> None:
    from atwill.core.errors import BadRequest

    for bad, message in (("ten", "Only integer"), (-1, "Only non-negative integer")):
        with pytest.raises(BadRequest, match=message):
            prepare(eng.ctl, {"template": template(a={}), "timeout_mins": bad}, "i",
                    "s", "p", "u")


def test_a_failed_update_rolls_back_in_place_changes_and_added_resources(
        eng: Engine, thing: Thing) -> None:
    stack_id = create(eng, {"template": template(a={"v": 1, "w": 1}),
                               "disable_rollback": False})
    first = status(eng, stack_id)[2]["a"][1]
    failing = template(a={"v": 2, "w": 1}, b={"fail": True})
    failing["resources"]["b"]["depends_on"] = "a"
    update(eng, stack_id, {"template": failing, "disable_rollback": False})
    state, reason, rows = status(eng, stack_id)
    assert (state, reason) == ("ROLLBACK_COMPLETE", "Stack ROLLBACK completed successfully")
    assert set(rows) == {"a"} and rows["a"][1] == first
    assert thing.cloud == {first: {"v": 1, "w": 1}}
    assert stack_events(eng, stack_id)[-4:] == [
        "UPDATE_IN_PROGRESS", "UPDATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE"]


def test_a_failed_update_puts_back_a_replaced_resource(eng: Engine, thing: Thing) -> None:
    stack_id = create(eng, {"template": template(a={"v": 1, "w": 1}),
                               "disable_rollback": False})
    first = status(eng, stack_id)[2]["a"][1]
    failing = template(a={"v": 1, "w": 2}, b={"fail": True})
    failing["resources"]["b"]["depends_on"] = "a"
    update(eng, stack_id, {"template": failing, "disable_rollback": False})
    state, _reason, rows = status(eng, stack_id)
    assert state == "ROLLBACK_COMPLETE"
    assert rows == {"a": ("ROLLBACK_COMPLETE", first)}
    assert thing.cloud == {first: {"v": 1, "w": 1}}
    # Without rollback the failed update stays, its successor in place.
    update(eng, stack_id, {"template": failing, "disable_rollback": True})
    state, reason, rows = status(eng, stack_id)
    assert state == "UPDATE_FAILED" and reason.startswith("Resource UPDATE failed: BadRequest")
    assert rows["a"][1] != first and rows["b"][0] == "CREATE_FAILED"


def test_a_cancelled_update_rolls_back(eng: Engine, thing: Thing) -> None:
    stack_id = create(eng, {"template": template(a={"v": 1})})
    first = status(eng, stack_id)[2]["a"][1]
    waiting = template(a={"v": 2}, b={"wait": True})
    waiting["resources"]["b"]["depends_on"] = "a"
    update(eng, stack_id, {"template": waiting})
    state, _reason, rows = status(eng, stack_id)
    assert state == "ROLLBACK_COMPLETE"
    assert thing.cloud == {first: {"v": 1, "w": None}}
    assert set(rows) == {"a"}
    assert stack_events(eng, stack_id)[-3:-1] == ["UPDATE_FAILED", "ROLLBACK_IN_PROGRESS"]
    with eng.ctl.db.session() as session:
        failed = session.scalar(select(StackEvent).where(
            StackEvent.stack_id == stack_id, StackEvent.resource_name == "s",
            StackEvent.status == "FAILED"))
        assert failed.reason == "Stack UPDATE cancelled"
    assert rows["a"][1] == first
