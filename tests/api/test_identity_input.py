"""Identity input shapes: project tags (Keystone's rules) and names without control
characters; every refusal is a clear 400 that stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud import Cloud, unique

BAD_TAGS: list[Any] = [
    "a-string", 5, {"a": 1}, True, [1], [None], [["x"]], [{"a": "b"}], ["a/b"], ["a,b"],
    [""], ["x" * 256], ["a\u0000b"], ["tab\there"], [f"t{i}" for i in range(81)],
]


@pytest.mark.parametrize("tags", BAD_TAGS, ids=[repr(t)[:30] for t in BAD_TAGS])
def test_bad_project_tags(cloud: Cloud, tags: Any) -> None:
    target = _project(cloud)
    before = cloud.db_snapshot()
    with cloud.http(cloud.token()) as client:
        made = client.post("/identity/v3/projects", json={"project": {
            "name": unique("tags"), "tags": tags}})
        changed = client.patch("/identity/v3/projects/" + target,
                               json={"project": {"tags": tags}})
    for resp in (made, changed):
        assert resp.status_code == 400, resp.text
        message = resp.json()["error"]["message"]
        assert "project.tags" in message and len(message) < 300
    assert cloud.db_snapshot() == before


def test_project_tags_are_kept(cloud: Cloud) -> None:
    with cloud.http(cloud.token()) as client:
        made = client.post("/identity/v3/projects", json={"project": {
            "name": unique("tags"), "tags": ["blue", "team a", "blue"]}})
        assert made.status_code == 201, made.text
        project = made.json()["project"]
        assert project["tags"] == ["blue", "team a"]
        url = "/identity/v3/projects/" + project["id"]
        assert client.patch(url, json={"project": {"tags": ["x"] * 2 + ["y"] * 78}}) \
            .json()["project"]["tags"] == ["x", "y"]
        assert client.get(url).json()["project"]["tags"] == ["x", "y"]


_PROJECTS: dict[str, str] = {}


def _project(cloud: Cloud) -> str:
    if cloud.url not in _PROJECTS:
        _PROJECTS[cloud.url] = cloud.openstack("project", "create", unique("tagged"),
                                               "-f", "json")["id"]
    return _PROJECTS[cloud.url]


CONTROL = ["a\u0000b", "line\nbreak", "cr\rhere", "esc\u001b[31m", "del\u007f", "\u0085x"]
KINDS = ["users", "projects", "domains", "roles"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", CONTROL, ids=[repr(n) for n in CONTROL])
def test_control_characters_in_names(cloud: Cloud, kind: str, name: str) -> None:
    key = kind[:-1]
    with cloud.http(cloud.token()) as client:
        target = client.post(f"/identity/v3/{kind}", json={key: {"name": unique("ok")}})
        assert target.status_code == 201, target.text
        target_id = target.json()[key]["id"]
        before = cloud.db_snapshot()
        made = client.post(f"/identity/v3/{kind}", json={key: {"name": name}})
        renamed = client.patch(f"/identity/v3/{kind}/{target_id}",
                               json={key: {"name": unique("x") + name}})
        for resp in (made, renamed):
            assert resp.status_code == 400, resp.text
            assert "control character" in resp.json()["error"]["message"]
        assert cloud.db_snapshot() == before
        if kind == "domains":
            client.patch(f"/identity/v3/domains/{target_id}",
                         json={"domain": {"enabled": False}})
        assert client.delete(f"/identity/v3/{kind}/{target_id}").status_code == 204
