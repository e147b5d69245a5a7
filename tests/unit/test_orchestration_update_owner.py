"""A stack update is made with the caller's rights, not the creator's (review finding)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from atwill.controller.db.orchestration import Stack
from atwill.controller.orchestration import stacks


class Session:
    def __init__(self) -> None:
        self.added: list[Any] = []

    def scalars(self, _query: Any) -> list[str]:
        return []

    def add(self, row: Any) -> None:
        self.added.append(row)


def test_the_updating_user_becomes_the_user_the_engine_acts_as() -> None:
    stack = Stack(id="s", name="web", project_id="p", user_id="creator-admin", template={},
                  files={}, environment={}, parameters={}, disable_rollback=False)
    state = SimpleNamespace(user_id="member", values={"a": 1}, disable_rollback=True,
                            tmpl=SimpleNamespace(resources={}))
    ready = SimpleNamespace(template={"resources": {}}, files={}, environment={},
                            state=state, active=[])
    stacks._apply(Session(), stack, ready, {})  # type: ignore[arg-type]
    assert stack.user_id == "member"
    assert (stack.action, stack.status) == ("UPDATE", "IN_PROGRESS")
