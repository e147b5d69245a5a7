"""The image API over plain HTTP: bad inputs, listing, ranges, members."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.cloud import Cloud, unique

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}
DATA = os.urandom(100_000)


@pytest.fixture(scope="module")
def client(cloud: Cloud) -> Iterator[httpx.Client]:
    with cloud.http(cloud.token()) as http:
        http.base_url = cloud.url + "/image"
        yield http


def create(client: httpx.Client, **body: object) -> dict:
    body.setdefault("name", unique("api"))
    resp = client.post("/v2/images", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture(scope="module")
def active(client: httpx.Client) -> dict:
    image = create(client, disk_format="raw", container_format="bare", tags=["a"], k="v")
    assert client.put(f"/v2/images/{image['id']}/file", content=DATA,
                      headers=OCTET).status_code == 204
    return client.get(f"/v2/images/{image['id']}").json()


def test_discovery(cloud: Cloud) -> None:
    with cloud.http() as http:
        root = http.get("/image/")
        assert root.status_code == 300
        assert root.json()["versions"][0]["status"] == "CURRENT"
        assert http.get("/image/versions").status_code == 200


def test_image_shape(active: dict) -> None:
    assert active["status"] == "active" and active["size"] == len(DATA)
    assert active["checksum"] == hashlib.md5(DATA).hexdigest()
    assert active["os_hash_algo"] == "sha512"
    assert active["os_hash_value"] == hashlib.sha512(DATA).hexdigest()
    assert active["k"] == "v" and active["tags"] == ["a"]
    assert active["self"] == f"/v2/images/{active['id']}"
    assert active["created_at"].endswith("Z") and len(active["created_at"]) == 20


def test_range_download(client: httpx.Client, active: dict) -> None:
    url = f"/v2/images/{active['id']}/file"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == DATA
    assert whole.headers["Content-MD5"] == active["checksum"]
    part = client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == DATA[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
    assert client.get(url, headers={"Range": "bytes=-5"}).content == DATA[-5:]
    bad = client.get(url, headers={"Range": f"bytes={len(DATA)}-"})
    assert bad.status_code == 416 and bad.json()["error"]["message"]
    queued = create(client)
    assert client.get(f"/v2/images/{queued['id']}/file").status_code == 204


def test_list_filters(client: httpx.Client) -> None:
    tag = unique("tag")
    one = create(client, tags=[tag], os_distro="alpine", min_ram=1)
    two = create(client, tags=[tag], os_distro="debian")
    hidden = create(client, tags=[tag], os_hidden=True)

    def ids(**params: str) -> set[str]:
        resp = client.get("/v2/images", params={"tag": tag, **params})
        assert resp.status_code == 200, resp.text
        return {i["id"] for i in resp.json()["images"]}

    assert ids() == {one["id"], two["id"]}
    assert ids(os_hidden="true") == {hidden["id"]}
    assert ids(os_distro="alpine") == {one["id"]}
    assert ids(name=two["name"]) == {two["id"]}
    assert ids(id=f"in:{one['id']},{hidden['id']}") == {one["id"]}
    assert ids(name=f"in:{one['name']},{two['name']}") == {one["id"], two["id"]}
    assert ids(status="active") == set()
    assert ids(visibility="private") == set()


def test_pagination_never_repeats(client: httpx.Client) -> None:
    tag = unique("page")
    made = [create(client, tags=[tag], name=f"p{i}")["id"] for i in range(5)]
    seen: list[str] = []
    url: str | None = f"/v2/images?tag={tag}&limit=2&sort=name:asc"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [i["id"] for i in body["images"]]
        url = body.get("next")
        pages += 1
        assert pages <= 3
    assert seen == made and pages == 3


def test_members_lifecycle(client: httpx.Client, cloud: Cloud) -> None:
    image = create(client, visibility="shared")
    url = f"/v2/images/{image['id']}/members"
    member = str(uuid.uuid4().hex)
    added = client.post(url, json={"member": member})
    assert added.status_code == 200 and added.json()["status"] == "pending"
    assert client.post(url, json={"member": member}).status_code == 409
    assert client.get(f"{url}/{member}").json()["member_id"] == member
    assert client.put(f"{url}/{member}", json={"status": "bogus"}).status_code == 400
    assert client.put(f"{url}/{member}", json={"status": "accepted"}).status_code == 200
    assert client.delete(f"{url}/{member}").status_code == 204
    assert client.get(url).json()["members"] == []
    private = create(client, visibility="private")
    assert client.post(f"/v2/images/{private['id']}/members",
                       json={"member": member}).status_code == 403


def test_unauthenticated(cloud: Cloud, active: dict) -> None:
    with cloud.http() as http:
        for method, path in (("GET", "/image/v2/images"), ("POST", "/image/v2/images"),
                             ("GET", f"/image/v2/images/{active['id']}/file")):
            resp = http.request(method, path)
            assert resp.status_code == 401 and resp.json()["error"]["message"]


BAD = [
    ("POST", "/v2/images", {"content": b"{"}, 400),
    ("POST", "/v2/images", {"json": []}, 400),
    ("POST", "/v2/images", {"json": {"status": "active"}}, 403),
    ("POST", "/v2/images", {"json": {"visibility": "open"}}, 400),
    ("POST", "/v2/images", {"json": {"id": "not-a-uuid"}}, 400),
    ("POST", "/v2/images", {"json": {"min_ram": "lots"}}, 400),
    ("POST", "/v2/images", {"json": {"prop": 5}}, 400),
    ("POST", "/v2/images", {"json": {"tags": ["x" * 256]}}, 400),
    ("POST", "/v2/images", {"json": {"owner": "someone-else"}}, 201),
    ("GET", "/v2/images?limit=abc", {}, 400),
    ("GET", "/v2/images?sort_key=secret", {}, 400),
    ("GET", "/v2/images?marker=6f1d2c3b-0000-4000-8000-00000000a11e", {}, 400),
    ("GET", "/v2/images?visibility=everyone", {}, 400),
    ("GET", "/v2/images?size_min=-1", {}, 400),
    ("GET", "/v2/images/NAME", {}, 404),
    ("GET", "/v2/images/{id}/file", {"headers": {"Range": "bytes=5-1"}}, 416),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "replace", "path": "/name",
                                            "value": "x"}]}, 415),
    ("PATCH", "/v2/images/{id}", {"content": b"{}", "headers": PATCH}, 400),
    ("PATCH", "/v2/images/{id}", {"content": b"[{", "headers": PATCH}, 400),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "jump", "path": "/name"}],
                                  "headers": PATCH}, 400),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "replace", "path": "/status",
                                            "value": "queued"}], "headers": PATCH}, 403),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "replace", "path": "/size",
                                            "value": 1}], "headers": PATCH}, 403),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "remove", "path": "/name"}],
                                  "headers": PATCH}, 403),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "remove", "path": "/nope"}],
                                  "headers": PATCH}, 409),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "replace", "path": "/disk_format",
                                            "value": "iso"}], "headers": PATCH}, 403),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "add", "path": "/k", "value": 1}],
                                  "headers": PATCH}, 400),
    ("PATCH", "/v2/images/{id}", {"json": [{"op": "add", "path": "/min_disk",
                                            "value": -4}], "headers": PATCH}, 400),
    ("PATCH", "/v2/images/{missing}", {"json": [], "headers": PATCH}, 404),
    ("PUT", "/v2/images/{id}/file", {"content": b"x", "headers": OCTET}, 409),
    ("PUT", "/v2/images/{id}/file", {"content": b"x",
                                     "headers": {"Content-Type": "text/plain"}}, 415),
    ("PUT", "/v2/images/{missing}/file", {"content": b"x", "headers": OCTET}, 404),
    ("PUT", "/v2/images/{id}/tags/" + "t" * 256, {}, 400),
    ("DELETE", "/v2/images/{id}/tags/absent", {}, 404),
    ("POST", "/v2/images/{id}/actions/explode", {}, 400),
    ("GET", "/v2/images/{id}/members/absent", {}, 404),
    ("POST", "/v2/images/{id}/members", {"json": {}}, 400),
    ("DELETE", "/v2/images/{missing}", {}, 404),
    ("GET", "/v2/schemas/nothing", {}, 404),
    ("DELETE", "/v2/images", {}, 405),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD,
                         ids=[f"{m} {p} {s}" for m, p, _, s in BAD])
def test_bad_input(client: httpx.Client, active: dict, method: str, path: str,
                   kwargs: dict, status: int) -> None:
    before = client.get(f"/v2/images/{active['id']}").json()
    path = path.format(id=active["id"], missing=uuid.uuid4())
    resp = client.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    if status >= 400:
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.json()["error"]["message"]
    after = client.get(f"/v2/images/{active['id']}").json()
    assert after == before


def test_upload_to_image_without_formats(client: httpx.Client) -> None:
    image = create(client)
    resp = client.put(f"/v2/images/{image['id']}/file", content=b"x", headers=OCTET)
    assert resp.status_code == 400 and "disk_format" in resp.json()["error"]["message"]
    assert client.get(f"/v2/images/{image['id']}").json()["status"] == "queued"


def test_patch_tags_and_properties(client: httpx.Client) -> None:
    image = create(client, tags=["a"], p="1")
    ops = [{"op": "add", "path": "/tags/0", "value": "b"}, {"op": "remove", "path": "/p"},
           {"op": "add", "path": "/q", "value": "2"},
           {"op": "replace", "path": "/min_disk", "value": 3}]
    resp = client.patch(f"/v2/images/{image['id']}", json=ops, headers=PATCH)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert sorted(body["tags"]) == ["a", "b"] and "p" not in body
    assert body["q"] == "2" and body["min_disk"] == 3


def test_info_import_and_stores(client: httpx.Client, cloud: Cloud) -> None:
    # No interoperable import methods (upload only), one store: Glance's answers.
    resp = client.get("/v2/info/import")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"import-methods": {"description": "Import methods available.",
                                              "type": "array", "value": []}}
    stores = client.get("/v2/info/stores")
    assert stores.status_code == 404 and stores.json()["error"]["message"]
    with cloud.http() as http:
        assert http.get("/image/v2/info/import").status_code == 401
