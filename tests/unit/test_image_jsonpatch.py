"""Glance's two JSON-patch dialects, read into RFC 6902 and applied by the jsonpatch library."""

import pytest

from atwill.core import jsonpatch
from atwill.core.jsonpatch import V20, V21, PatchConflict, PatchError

DOC = {"name": "a", "tags": ["x", "y"], "k": "v"}


@pytest.mark.parametrize(("ops", "expected"), [
    ([{"op": "add", "path": "/name", "value": "b"}], {**DOC, "name": "b"}),
    ([{"op": "add", "path": "/new", "value": "n"}], {**DOC, "new": "n"}),
    ([{"op": "replace", "path": "/k", "value": "w"}], {**DOC, "k": "w"}),
    ([{"op": "replace", "path": "/tags", "value": ["z"]}], {**DOC, "tags": ["z"]}),
    ([{"op": "remove", "path": "/k"}], {"name": "a", "tags": ["x", "y"]}),
    ([{"op": "add", "path": "/a~1b", "value": "1"}], {**DOC, "a/b": "1"}),
    ([{"op": "add", "path": "/ k ", "value": "w"}], {**DOC, "k": "w"}),
    # openstacksdk's diffs (add_tag, then update_image); Glance refuses these.
    ([{"op": "add", "path": "/tags/0", "value": "z"}], {**DOC, "tags": ["z", "x", "y"]}),
    ([{"op": "add", "path": "/tags/-", "value": "z"}], {**DOC, "tags": ["x", "y", "z"]}),
    ([{"op": "remove", "path": "/tags/1"}], {**DOC, "tags": ["x"]}),
    ([{"op": "replace", "path": "/tags/0", "value": "w"}], {**DOC, "tags": ["w", "y"]}),
])
def test_v21(ops: list, expected: dict) -> None:
    assert jsonpatch.apply(DOC, jsonpatch.parse(ops, V21), V21) == expected
    assert DOC == {"name": "a", "tags": ["x", "y"], "k": "v"}


@pytest.mark.parametrize(("ops", "expected"), [
    ([{"replace": "/name", "value": "b"}], {**DOC, "name": "b"}),
    ([{"add": "/new", "value": "n"}], {**DOC, "new": "n"}),
    ([{"remove": "/k"}], {"name": "a", "tags": ["x", "y"]}),
    ([{"replace": "/tags", "value": []}, {"add": "/j", "value": "1"}],
     {**DOC, "tags": [], "j": "1"}),
])
def test_v20(ops: list, expected: dict) -> None:
    parsed = jsonpatch.parse(ops, V20)
    assert all(set(op) <= {"op", "path", "value"} for op in parsed)
    assert jsonpatch.apply(DOC, parsed, V20) == expected


@pytest.mark.parametrize(("body", "dialect", "message"), [
    ({"op": "add"}, V21, "Request body must be a JSON array of operation objects."),
    ([1], V21, "Operations must be JSON objects."),
    ([{"path": "/k"}], V21, "Unable to find `op` in JSON Schema change. It must be one of "
                            "the following: add, remove, replace."),
    ([{"op": "move", "from": "/k", "path": "/j"}], V21,
     "Invalid operation: `move`. It must be one of the following: add, remove, replace."),
    ([{"op": "test", "path": "/k", "value": "v"}], V21, "Invalid operation: `test`."),
    ([{"op": "remove"}], V21, "Unable to find 'path' in JSON Schema change"),
    ([{"op": "add", "path": "k", "value": 1}], V21, 'Pointer `k` does not start with "/".'),
    ([{"op": "add", "path": "/k//j", "value": 1}], V21, 'Pointer `/k//j` contains adjacent "/".'),
    ([{"op": "add", "path": "/k/", "value": 1}], V21, 'Pointer `/k/` end with "/".'),
    ([{"op": "add", "path": "/", "value": 1}], V21, "does not contains valid token."),
    ([{"op": "add", "path": "/a~2", "value": 1}], V21, 'contains "~" not part of'),
    ([{"op": "add", "path": "/k/0", "value": "z"}], V21,
     "Invalid JSON pointer for this resource: '/k/0'"),
    ([{"op": "remove", "path": "/tags/x"}], V21, "Invalid JSON pointer for this resource"),
    ([{"op": "remove", "path": "/tags/01"}], V21, "Invalid JSON pointer for this resource"),
    ([{"op": "add", "path": "/tags/0/1", "value": "z"}], V21,
     "Invalid JSON pointer for this resource"),
    ([{"op": "replace", "path": "/locations/0", "value": {}}], V21,
     "Invalid JSON pointer for this resource: '/locations/0'"),
    ([{"op": "add", "path": "/k"}], V21, 'Operation "add" requires a member named "value".'),
    ([{"op": "replace", "path": 5, "value": 1}], V21, 'Pointer `5` does not start with "/".'),
    ([{"replace": "/k", "add": "/j", "value": 1}], V20,
     'Operation objects must contain only one member named "add", "remove", or "replace".'),
    ([{"op": "replace", "path": "/k", "value": 1}], V20,
     'Operation objects must contain exactly one member named "add", "remove", or "replace".'),
    ([{"replace": "/k"}], V20, 'Operation "replace" requires a member named "value".'),
    ([{"replace": "k", "value": 1}], V20, 'Pointer `k` does not start with "/".'),
])
def test_malformed(body: object, dialect: str, message: str) -> None:
    with pytest.raises(PatchError) as err:
        jsonpatch.parse(body, dialect)
    assert message in str(err.value)


def test_locations_keep_glance_depth() -> None:
    ops = jsonpatch.parse([{"op": "add", "path": "/locations/0", "value": {}}], V21)
    assert [jsonpatch.root(op) for op in ops] == ["locations"]
    assert jsonpatch.parse([{"remove": "/locations/1"}], V20)[0]["path"] == "/locations/1"


@pytest.mark.parametrize(("ops", "dialect", "message"), [
    ([{"op": "remove", "path": "/missing"}], V21, "Property missing does not exist."),
    ([{"op": "replace", "path": "/missing", "value": "1"}], V21,
     "Property missing does not exist."),
    ([{"remove": "/missing"}], V20, "Property missing does not exist."),
    ([{"add": "/k", "value": "w"}], V20, "Property k already present."),
    ([{"add": "/name", "value": "w"}], V20, "Property name already present."),
    ([{"op": "remove", "path": "/tags/2"}], V21, "Property tags/2 does not exist."),
    ([{"op": "add", "path": "/tags/3", "value": "z"}], V21, "Property tags/3 does not exist."),
])
def test_conflict(ops: list, dialect: str, message: str) -> None:
    with pytest.raises(PatchConflict, match=message):
        jsonpatch.apply(DOC, jsonpatch.parse(ops, dialect), dialect)


def test_unknown_media_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not a JSON-patch media type"):
        jsonpatch.parse([], "application/json")
