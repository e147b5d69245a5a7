"""Server lock/unlock (2.9, 2.73), server tags (2.26), generated x509 keypairs (2.2–2.91)
and the instance actions they record, through the real CLI and raw HTTP."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from atwill.controller.db.models import Instance
from atwill.controller.db.session import Database
from tests.cloud import Cloud, unique

V = "/compute/v2.1"


def mv(version: str) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {version}"}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A member in a project of their own, a flavor and an image (no nodes)."""
    data = tmp_path_factory.mktemp("img") / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("tiny")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("img"),
                            "-f", "json")["id"]
    project, user = unique("proj"), unique("user")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield {"flavor": flavor, "image": image, "user": user, "project": project}
    finally:
        for server in cloud.openstack("server", "list", "-f", "json", user=user):
            cloud.openstack("server", "unlock", server["ID"])
            cloud.openstack("server", "delete", server["ID"], user=user)
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)


def _server(cloud: Cloud, env: dict[str, str], state: str | None = None) -> str:
    """A member's server, left in ERROR by the scheduler (no nodes), or forced to `state`."""
    made = cloud.openstack("server", "create", "--flavor", env["flavor"], "--image",
                           env["image"], "--no-network", unique("srv"), "-f", "json",
                           user=env["user"])["id"]
    deadline = time.monotonic() + 30
    while cloud.openstack("server", "show", made, "-f", "json",
                          user=env["user"])["status"] != "ERROR":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    if state:
        db = Database(cloud.db_url())
        with db.session() as session:
            session.execute(update(Instance).where(Instance.id == made).values(
                vm_state=state, task_state=None))
        db.dispose()
    return made


def _delete(cloud: Cloud, env: dict[str, str], server: str) -> None:
    cloud.openstack("server", "delete", server, user=env["user"])


def _show(client: object, server: str, version: str) -> dict:
    resp = client.get(f"{V}/servers/{server}", headers=mv(version))  # type: ignore[attr-defined]
    assert resp.status_code == 200, resp.text
    return resp.json()["server"]


def _act(client: object, server: str, body: object, version: str = "2.96") -> object:
    return client.post(f"{V}/servers/{server}/action", json=body,  # type: ignore[attr-defined]
                       headers=mv(version))


# Lock -------------------------------------------------------------------------------------

def test_lock_with_reason_with_the_cli(cloud: Cloud, env: dict[str, str]) -> None:
    server = _server(cloud, env)
    cloud.openstack("server", "lock", "--reason", "backup running", server, user=env["user"])
    with cloud.http(cloud.token(env["user"])) as client:
        shown = _show(client, server, "2.73")
        assert (shown["locked"], shown["locked_reason"]) == (True, "backup running")
        # Tempest's v2_9 and v2_73 schemas: each field only from its microversion.
        assert _show(client, server, "2.9")["locked"] is True
        assert "locked_reason" not in _show(client, server, "2.72")
        assert "locked" not in _show(client, server, "2.8")
        listed = {v: [s["id"] for s in client.get(
            f"{V}/servers/detail", params={"locked": v}, headers=mv("2.73")).json()["servers"]]
            for v in ("true", "false")}
        assert server in listed["true"] and server not in listed["false"]
        bad = client.get(f"{V}/servers", params={"locked": "perhaps"}, headers=mv("2.73"))
        assert bad.status_code == 400
        # A member's actions on a locked server: Nova's 409, and nothing changes.
        before = cloud.db_snapshot()
        for resp in (_act(client, server, {"os-stop": None}),
                     _act(client, server, {"reboot": {"type": "HARD"}}),
                     client.delete(f"{V}/servers/{server}"),
                     client.post(f"{V}/servers/{server}/metadata",
                                 json={"metadata": {"a": "b"}})):
            assert resp.status_code == 409, resp.text
            assert resp.json()["conflictingRequest"]["message"] == \
                f"Instance {server} is locked"
        assert cloud.db_snapshot() == before
    cloud.openstack("server", "unlock", server, user=env["user"])
    with cloud.http(cloud.token(env["user"])) as client:
        shown = _show(client, server, "2.73")
    assert (shown["locked"], shown["locked_reason"]) == (False, None)
    events = cloud.openstack("server", "event", "list", server, "-f", "json", user=env["user"])
    assert [e["Action"] for e in events] == ["unlock", "lock", "create"]
    _delete(cloud, env, server)


def test_reason_needs_273_and_a_valid_body(cloud: Cloud, env: dict[str, str]) -> None:
    server = _server(cloud, env)
    before = cloud.db_snapshot()
    with cloud.http(cloud.token(env["user"])) as client:
        for body, version in (({"lock": {"locked_reason": "x"}}, "2.72"),
                              ({"lock": {"reason": "x"}}, "2.73"),
                              ({"lock": {"locked_reason": "x" * 256}}, "2.73"),
                              ({"lock": "x"}, "2.73")):
            resp = _act(client, server, body, version)
            assert resp.status_code == 400, (body, version, resp.text)
            assert resp.json()["badRequest"]["message"]
    assert cloud.db_snapshot() == before
    _delete(cloud, env, server)


def test_member_cannot_lift_an_admins_lock(cloud: Cloud, env: dict[str, str]) -> None:
    server = _server(cloud, env)
    with cloud.http(cloud.token()) as admin:
        assert _act(admin, server, {"lock": None}).status_code == 202
    with cloud.http(cloud.token(env["user"])) as member:
        resp = _act(member, server, {"unlock": None})
        assert resp.status_code == 403, resp.text
        assert _show(member, server, "2.9")["locked"] is True
    failed = cloud.openstack("server", "unlock", server, user=env["user"], check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    with cloud.http(cloud.token()) as admin:
        assert _act(admin, server, {"unlock": None}).status_code == 202
    with cloud.http(cloud.token(env["user"])) as member:
        # The member's own lock is the member's to lift.
        assert _act(member, server, {"lock": None}).status_code == 202
        assert _act(member, server, {"unlock": None}).status_code == 202
        assert _show(member, server, "2.9")["locked"] is False
    _delete(cloud, env, server)


def test_lock_events_follow_the_microversion(cloud: Cloud, env: dict[str, str]) -> None:
    server = _server(cloud, env)
    with cloud.http(cloud.token(env["user"])) as client:
        assert _act(client, server, {"lock": None}).status_code == 202
        listed = client.get(f"{V}/servers/{server}/os-instance-actions").json()
        request_id = listed["instanceActions"][0]["request_id"]
        path = f"{V}/servers/{server}/os-instance-actions/{request_id}"
        old = client.get(path, headers=mv("2.50")).json()["instanceAction"]
        new = client.get(path, headers=mv("2.62")).json()["instanceAction"]
        latest = client.get(path, headers=mv("2.84")).json()["instanceAction"]
        missing = client.get(f"{V}/servers/{server}/os-instance-actions/req-nope")
        assert _act(client, server, {"unlock": None}).status_code == 202
    with cloud.http(cloud.token()) as admin:
        as_admin = admin.get(path, headers=mv("2.62")).json()["instanceAction"]
    assert old["action"] == "lock" and "events" not in old
    assert [e["event"] for e in new["events"]] == ["api_lock"]
    assert set(new["events"][0]) == {"event", "start_time", "finish_time", "result", "hostId"}
    assert set(latest["events"][0]) == {"event", "start_time", "finish_time", "result",
                                        "hostId", "details"}
    assert set(as_admin["events"][0]) == {"event", "start_time", "finish_time", "result",
                                          "traceback", "host", "hostId"}
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == "Action req-nope not found"
    _delete(cloud, env, server)


# Tags -------------------------------------------------------------------------------------

def test_tags_with_the_cli(cloud: Cloud, env: dict[str, str]) -> None:
    tagged, other = _server(cloud, env, "active"), _server(cloud, env, "active")
    user = env["user"]
    cloud.openstack("server", "set", "--tag", "blue", "--tag", "db", tagged, user=user)
    cloud.openstack("server", "set", "--tag", "blue", other, user=user)
    shown = cloud.openstack("server", "show", tagged, "-f", "json", user=user)
    assert sorted(shown["tags"]) == ["blue", "db"]
    listed = cloud.openstack("server", "list", "--tags", "blue,db", "-f", "json", user=user)
    assert [s["ID"] for s in listed] == [tagged]
    cloud.openstack("server", "unset", "--tag", "db", tagged, user=user)
    listed = cloud.openstack("server", "list", "--tags", "blue", "-f", "json", user=user)
    assert sorted(s["ID"] for s in listed) == sorted([tagged, other])
    assert cloud.openstack("server", "show", tagged, "-f", "json", user=user)["tags"] == \
        ["blue"]
    _delete(cloud, env, tagged)
    _delete(cloud, env, other)


def test_tag_api_and_filters(cloud: Cloud, env: dict[str, str]) -> None:
    a, b = _server(cloud, env, "active"), _server(cloud, env, "stopped")
    tags = f"{V}/servers/{a}/tags"
    with cloud.http(cloud.token(env["user"])) as client:
        h = mv("2.26")
        put = client.put(tags, json={"tags": ["x", "y", "x"]}, headers=h)
        assert (put.status_code, put.json()) == (200, {"tags": ["x", "y"]})
        assert client.get(tags, headers=h).json() == {"tags": ["x", "y"]}
        added = client.put(f"{tags}/z", headers=h)
        assert added.status_code == 201 and added.headers["Location"].endswith(f"{a}/tags/z")
        assert client.put(f"{tags}/z", headers=h).status_code == 204
        assert client.get(f"{tags}/z", headers=h).status_code == 204
        assert client.get(f"{tags}/nope", headers=h).status_code == 404
        assert client.put(f"{V}/servers/{b}/tags/y", headers=h).status_code == 201
        assert _show(client, a, "2.26")["tags"] == ["x", "y", "z"]
        assert "tags" not in _show(client, a, "2.25")

        def ids(**query: str) -> set[str]:
            found = client.get(f"{V}/servers", params=query, headers=h).json()["servers"]
            return {s["id"] for s in found} & {a, b}

        assert ids(tags="x,y") == {a}
        assert ids(**{"tags-any": "x,y"}) == {a, b}
        assert ids(**{"not-tags": "x,y"}) == {b}
        assert ids(**{"not-tags-any": "x"}) == {b}
        assert ids(**{"not-tags-any": "y"}) == set()
        assert client.delete(f"{tags}/x", headers=h).status_code == 204
        assert client.delete(f"{tags}/x", headers=h).status_code == 404
        assert client.delete(tags, headers=h).status_code == 204
        assert client.get(tags, headers=h).json() == {"tags": []}
    _delete(cloud, env, a)
    _delete(cloud, env, b)


def test_bad_tag_requests_change_nothing(cloud: Cloud, env: dict[str, str]) -> None:
    active, failed = _server(cloud, env, "active"), _server(cloud, env)
    with cloud.http(cloud.token(env["user"])) as client:
        h = mv("2.26")
        full = client.put(f"{V}/servers/{active}/tags", headers=h,
                          json={"tags": [f"t{i}" for i in range(50)]})
        assert full.status_code == 200
        before = cloud.db_snapshot()
        cases = [
            (client.put(f"{V}/servers/{active}/tags/one-more", headers=h), 400,
             "The number of tags exceeded the per-server limit 50"),
            (client.put(f"{V}/servers/{active}/tags", headers=h,
                        json={"tags": [f"t{i}" for i in range(51)]}), 400, None),
            (client.put(f"{V}/servers/{active}/tags", headers=h, json={"tags": ["a,b"]}),
             400, None),
            (client.put(f"{V}/servers/{active}/tags", headers=h, json={"tags": ["x" * 61]}),
             400, None),
            (client.put(f"{V}/servers/{active}/tags", headers=h, json={"tag": []}), 400, None),
            (client.put(f"{V}/servers/{failed}/tags/a", headers=h), 409,
             f"Cannot 'update tag' instance {failed} while it is in vm_state error"),
            (client.get(f"{V}/servers/{active}/tags", headers=mv("2.25")), 404, None),
            (client.put(f"{V}/servers/{active}/tags/a", headers=mv("2.25")), 404, None),
        ]
        for resp, status, message in cases:
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"] == "application/json"
            assert message is None or message in resp.text
        assert client.put(f"{V}/servers/{active}/tags", headers=h,
                          json={"tags": ["a,b"]}).json()["badRequest"]["message"]
        assert cloud.db_snapshot() == before
    _delete(cloud, env, active)
    _delete(cloud, env, failed)


def test_tags_at_create_from_252(cloud: Cloud, env: dict[str, str]) -> None:
    flavor = cloud.openstack("flavor", "show", env["flavor"], "-f", "json")["id"]
    body = {"server": {"name": unique("srv"), "flavorRef": flavor, "imageRef": env["image"],
                       "networks": "none", "tags": ["web", "web", "prod"]}}
    with cloud.http(cloud.token(env["user"])) as client:
        before = cloud.db_snapshot()
        old = client.post(f"{V}/servers", json=body, headers=mv("2.51"))
        assert old.status_code == 400 and cloud.db_snapshot() == before
        made = client.post(f"{V}/servers", json=body, headers=mv("2.52"))
        assert made.status_code == 202, made.text
        server = made.json()["server"]["id"]
        assert _show(client, server, "2.52")["tags"] == ["web", "prod"]
    _delete(cloud, env, server)


# x509 keypairs ------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["2.2", "2.91"])
def test_generated_x509_keypair(cloud: Cloud, env: dict[str, str], version: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    name = unique("x509")
    with cloud.http(cloud.token(env["user"])) as client:
        resp = client.post(f"{V}/os-keypairs", headers=mv(version),
                           json={"keypair": {"name": name, "type": "x509"}})
        assert resp.status_code == 201, resp.text
        made = resp.json()["keypair"]
        shown = client.get(f"{V}/os-keypairs/{name}", headers=mv(version)).json()["keypair"]
        assert client.delete(f"{V}/os-keypairs/{name}", headers=mv(version)).status_code == 204
    assert set(made) == {"name", "type", "public_key", "fingerprint", "user_id", "private_key"}
    cert = x509.load_pem_x509_certificate(made["public_key"].encode())
    key = serialization.load_pem_private_key(made["private_key"].encode(), password=None)
    assert cert.public_key() == key.public_key()
    assert made["fingerprint"].replace(":", "") == cert.fingerprint(hashes.SHA1()).hex()
    assert (shown["type"], shown["fingerprint"]) == ("x509", made["fingerprint"])
    assert "private_key" not in shown


def test_x509_generation_ends_at_292(cloud: Cloud, env: dict[str, str]) -> None:
    before = cloud.db_snapshot()
    with cloud.http(cloud.token(env["user"])) as client:
        resp = client.post(f"{V}/os-keypairs", headers=mv("2.92"),
                           json={"keypair": {"name": unique("x509"), "type": "x509"}})
    assert resp.status_code == 400
    assert cloud.db_snapshot() == before
