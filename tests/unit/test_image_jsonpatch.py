"""JSON patch as the image API applies it."""

import pytest

from atwill.core import jsonpatch
from atwill.core.jsonpatch import PatchConflict, PatchError

DOC = {"name": "a", "tags": ["x", "y"], "k": "v"}


@pytest.mark.parametrize(("ops", "expected"), [
    ([{"op": "add", "path": "/name", "value": "b"}], {**DOC, "name": "b"}),
    ([{"op": "replace", "path": "/k", "value": "w"}], {**DOC, "k": "w"}),
    ([{"op": "remove", "path": "/k"}], {"name": "a", "tags": ["x", "y"]}),
    ([{"op": "add", "path": "/tags/0", "value": "z"}], {**DOC, "tags": ["z", "x", "y"]}),
    ([{"op": "add", "path": "/tags/-", "value": "z"}], {**DOC, "tags": ["x", "y", "z"]}),
    ([{"op": "remove", "path": "/tags/1"}], {**DOC, "tags": ["x"]}),
    ([{"op": "move", "from": "/k", "path": "/j"}], {"name": "a", "tags": ["x", "y"], "j": "v"}),
    ([{"op": "copy", "from": "/k", "path": "/j"}], {**DOC, "j": "v"}),
    ([{"op": "test", "path": "/k", "value": "v"}], DOC),
    ([{"op": "add", "path": "/a~1b", "value": "1"}], {**DOC, "a/b": "1"}),
])
def test_apply(ops: list, expected: dict) -> None:
    assert jsonpatch.apply(DOC, ops) == expected
    assert DOC == {"name": "a", "tags": ["x", "y"], "k": "v"}


@pytest.mark.parametrize("ops", [
    {"op": "add"}, [1], [{"op": "frob", "path": "/k"}], [{"op": "add", "path": "k", "value": 1}],
    [{"op": "add", "path": "/k"}], [{"op": "add", "path": "//", "value": 1}],
    [{"op": "move", "path": "/k"}], [{"op": "remove", "path": "/tags/01"}],
    [{"op": "remove", "path": "/tags/x"}],
])
def test_malformed(ops: object) -> None:
    with pytest.raises(PatchError):
        jsonpatch.apply(DOC, ops)  # type: ignore[arg-type]


@pytest.mark.parametrize("ops", [
    [{"op": "remove", "path": "/missing"}], [{"op": "replace", "path": "/missing", "value": 1}],
    [{"op": "remove", "path": "/tags/2"}], [{"op": "add", "path": "/tags/3", "value": "z"}],
    [{"op": "test", "path": "/k", "value": "other"}], [{"op": "add", "path": "/k/x", "value": 1}],
])
def test_conflict(ops: list) -> None:
    with pytest.raises(PatchConflict):
        jsonpatch.apply(DOC, ops)


def test_roots() -> None:
    ops = [{"op": "move", "from": "/a", "path": "/b/0"}, {"op": "remove", "path": "/c"}]
    assert jsonpatch.roots(ops) == ["b", "a", "c"]
