"""`atwill apply`'s executor: each change recorded with its undo, undone in reverse order
when a later step fails; deletions, run last, named as standing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atwill.cli.apply_api import ApplyError
from atwill.cli.apply_steps import ApplyFailed, Executor
from atwill.core.profile import KINDS, load
from atwill.core.profile_plan import plan


class FakeApi:
    """Answers like the APIs; the call whose path contains `fail_on` is refused."""

    def __init__(self, fail_on: str) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail_on = fail_on

    def call(self, method: str, service: str, path: str, body: Any = None, **_: Any) -> Any:
        self.calls.append((method, path))
        if self.fail_on and self.fail_on in f"{method} {path}":
            raise ApplyError(f"{method} {path}: 409 busy")
        kind = path.strip("/").split("/")[0].rstrip("s").replace("-", "_")
        return {kind: {"id": f"id-{len(self.calls)}"}}

    def get(self, service: str, path: str, **kwargs: Any) -> Any:
        return self.call("GET", service, path, **kwargs)


def current() -> dict:
    state: dict = {k: {} for k in KINDS}
    state["projects"]["old"] = {"name": "old", "_id": "p-old", "description": "was"}
    state["flavors"]["gone"] = {"name": "gone", "_id": "f-gone"}
    return state


PROFILE = """\
roles: [{name: r}]
projects:
  - {name: p}
  - {name: old, description: now}
flavors:
  - {name: f, vcpus: 1, ram: 64}
  - {name: gone, state: absent}
"""


def run(fail_on: str) -> tuple[FakeApi, str]:
    api, lines = FakeApi(fail_on), []
    state = current()
    ex = Executor(api, state, Path("."), lines.append)  # type: ignore[arg-type]
    with pytest.raises(ApplyFailed) as caught:
        ex.run(plan(load(PROFILE), state))
    return api, caught.value.message


def test_a_failed_step_undoes_every_change_before_it_in_reverse() -> None:
    api, message = run("POST /flavors")
    assert message == ("step 4/5 (+ flavor f) failed: POST /flavors: 409 busy. The 3 "
                       "change(s) this apply had made were undone.")
    made = api.calls[:3]
    assert made == [("POST", "/roles"), ("PATCH", "/projects/p-old"), ("POST", "/projects")]
    # Undone newest first: the new project, the old one's description, the role.
    assert api.calls[4:] == [("DELETE", "/projects/id-3"), ("PATCH", "/projects/p-old"),
                             ("DELETE", "/roles/id-1")]


def test_a_failed_deletion_undoes_the_rest_and_says_what_stands() -> None:
    api, message = run("DELETE /flavors/f-gone")
    assert "step 5/5 (- flavor gone) failed" in message
    assert "The 4 change(s) this apply had made were undone." in message
    assert ("DELETE", "/roles/id-1") == api.calls[-1]


def test_an_undo_that_fails_is_named() -> None:
    api = FakeApi("POST /flavors")
    state = current()
    ex = Executor(api, state, Path("."), lambda _: None)  # type: ignore[arg-type]
    steps = plan(load(PROFILE), state)
    api.fail_on = "POST /flavors"
    original = api.call

    def flaky(method: str, service: str, path: str, body: Any = None, **kw: Any) -> Any:
        if method == "DELETE" and path.startswith("/roles/"):
            raise ApplyError("DELETE /roles: 503 down")
        return original(method, service, path, body, **kw)

    api.call = flaky  # type: ignore[method-assign]
    with pytest.raises(ApplyFailed, match=r"Undoing failed for: role r \(DELETE /roles: 503"):
        ex.run(steps)


def test_image_property_names_are_json_pointers() -> None:
    """A property with '/' or '~' in its name patches that property, not a path below it
    (review finding)."""
    from atwill.cli.apply_kinds import _pointer

    assert _pointer("hw_video_model") == "/hw_video_model"
    assert _pointer("a/b~c") == "/a~1b~0c"
