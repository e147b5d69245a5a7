"""The engine's dependency walk: independent resources run concurrently, at most
CONCURRENCY at a time; a resource starts once what it needs is done; after a failure
nothing new starts and the failure is the first one."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from atwill.controller.orchestration.engine import CONCURRENCY, Engine
from atwill.controller.orchestration.services import ResourceFailure


class Recorder:
    def __init__(self, fail: str = "") -> None:
        self.running, self.peak, self.fail = 0, 0, fail
        self.started: list[str] = []
        self.finished: list[str] = []

    async def __call__(self, name: str) -> None:
        self.started.append(name)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0.02)
            if name == self.fail:
                raise ResourceFailure("BadRequest", "refused")
        finally:
            self.running -= 1
        self.finished.append(name)


def walk(names: list[str], deps: dict[str, set[str]], step: Any) -> str | None:
    engine = Engine(SimpleNamespace())  # type: ignore[arg-type]
    state = SimpleNamespace(id="s", deadline=None)
    return asyncio.run(engine.walk(state, None, names, None, deps, step))  # type: ignore[arg-type]


def test_independent_resources_run_four_at_a_time_and_dependents_after() -> None:
    leaves = [f"r{i}" for i in range(10)]
    step = Recorder()
    assert walk([*leaves, "top"], {"top": set(leaves)}, step) is None
    assert step.peak == CONCURRENCY == 4
    assert step.started[-1] == "top" and set(step.finished[:-1]) == set(leaves)


def test_after_a_failure_nothing_new_starts() -> None:
    step = Recorder(fail="a")
    failure = walk(["a", "b", "c"], {"b": {"a"}, "c": {"b"}}, step)
    assert failure == "ResourceFailure: resources.a: refused"
    assert step.started == ["a"]
