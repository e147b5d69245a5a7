"""Image API bodies against Glance's schemas, as python-glanceclient checks them.

Tempest has no response schemas for the image API (only compute's); Glance
serves its own at /v2/schemas/*, and glanceclient validates every image and
member it reads against them. So the served schemas must be Glance's, and every
body of create, show, list, update and members must validate against them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cloud import Cloud, unique

V21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
V20 = {"Content-Type": "application/openstack-images-v2.0-json-patch"}
OCTET = {"Content-Type": "application/octet-stream"}
TYPES: dict[str, Any] = {"null": type(None), "string": str, "boolean": bool, "array": list,
                         "object": dict}
# Glance's image attributes: always present in an image body, null or not.
ALWAYS = {"id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
          "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size",
          "container_format", "disk_format", "created_at", "updated_at", "tags",
          "min_ram", "min_disk", "self", "file", "schema"}


def _type_ok(value: object, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, TYPES[kind])


def errors(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """What in value breaks schema (the JSON-schema keywords Glance's schemas use)."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_type_ok(value, k) for k in kinds):
            return [f"{where or '/'}: {value!r} is not of type {kinds}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            found.append(f"{where}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(item, schema["items"], f"{where}/{i}")
    if isinstance(value, dict):
        found += [f"{where}/{k}: required" for k in schema.get("required", ())
                  if k not in value]
        props, extra = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                found += errors(item, props[key], f"{where}/{key}")
            elif extra is False:
                found.append(f"{where}/{key}: additional property")
            elif isinstance(extra, dict):
                found += errors(item, extra, f"{where}/{key}")
    return found


@pytest.fixture(scope="module")
def client(cloud: Cloud) -> Iterator[httpx.Client]:
    with cloud.http(cloud.token()) as http:
        http.base_url = cloud.url + "/image"
        yield http


@pytest.fixture(scope="module")
def schemas(client: httpx.Client) -> dict[str, dict]:
    return {name: client.get(f"/v2/schemas/{name}").json()
            for name in ("image", "images", "member", "members")}


def check_image(body: dict, schemas: dict[str, dict]) -> None:
    assert errors(body, schemas["image"]) == []
    assert ALWAYS <= body.keys(), ALWAYS - body.keys()


def test_served_schemas_have_glances_shape(schemas: dict[str, dict]) -> None:
    image = schemas["image"]
    assert image["additionalProperties"] == {"type": "string"}
    assert [link["rel"] for link in image["links"]] == ["self", "enclosure", "describedby"]
    assert image["properties"].keys() == ALWAYS | {"direct_url", "locations", "stores"}
    assert {"uploading", "importing"} <= set(image["properties"]["status"]["enum"])
    assert image["properties"]["id"]["pattern"]
    assert schemas["member"]["additionalProperties"] is False
    for name, item in (("images", "image"), ("members", "member")):
        assert schemas[name]["properties"].keys() == {name, "first", "next", "schema"}
        assert schemas[name]["properties"][name]["items"] == schemas[item]
        assert [link["rel"] for link in schemas[name]["links"]] == \
            ["first", "next", "describedby"]


def test_bodies_validate(client: httpx.Client, schemas: dict[str, dict]) -> None:
    created = client.post("/v2/images", json={
        "name": unique("body"), "disk_format": "raw", "container_format": "bare",
        "visibility": "shared", "tags": ["t"], "k": "v"})
    assert created.status_code == 201
    image = created.json()
    try:
        check_image(image, schemas)
        assert client.put(f"/v2/images/{image['id']}/file", content=os.urandom(1024),
                          headers=OCTET).status_code == 204
        check_image(client.get(f"/v2/images/{image['id']}").json(), schemas)
        for headers, ops in ((V21, [{"op": "replace", "path": "/name", "value": "b"}]),
                             (V20, [{"add": "/j", "value": "1"}])):
            patched = client.patch(f"/v2/images/{image['id']}", json=ops, headers=headers)
            assert patched.status_code == 200, patched.text
            check_image(patched.json(), schemas)
        listing = client.get("/v2/images", params={"limit": 1}).json()
        assert errors(listing, schemas["images"]) == []
        for item in listing["images"]:
            check_image(item, schemas)
        member = client.post(f"/v2/images/{image['id']}/members",
                             json={"member": uuid.uuid4().hex})
        assert member.status_code == 200, member.text
        assert errors(member.json(), schemas["member"]) == []
        members = client.get(f"/v2/images/{image['id']}/members").json()
        assert errors(members, schemas["members"]) == [] and members["members"]
    finally:
        assert client.delete(f"/v2/images/{image['id']}").status_code == 204


def test_validator_catches_extras() -> None:
    member = {"properties": {"a": {"type": "string"}}, "additionalProperties": False}
    assert errors({"a": "x", "b": 1}, member) == ["/b: additional property"]
    assert errors({"a": 1}, member) == ["/a: 1 is not of type ['string']"]
    image = {"properties": {}, "additionalProperties": {"type": "string"}}
    assert errors({"p": None}, image) == ["/p: None is not of type ['string']"]


# Each metadefs schema Glance serves, and the name inside it (what Tempest checks).
METADEF_NAMES = {"namespace": "namespace", "namespaces": "namespaces",
                 "resource_type": "resource_type_association",
                 "resource_types": "resource_type_associations", "object": "object",
                 "objects": "objects", "property": "property", "properties": "properties",
                 "tag": "tag", "tags": "tags"}


def test_metadef_schemas_have_glances_shape(client: httpx.Client) -> None:
    served = {}
    for path, name in METADEF_NAMES.items():
        resp = client.get(f"/v2/schemas/metadefs/{path}")
        assert resp.status_code == 200, (path, resp.text)
        served[path] = resp.json()
        assert served[path]["name"] == name
    assert served["namespace"]["required"] == ["namespace"]
    assert served["namespace"]["additionalProperties"] is False
    assert "property" in served["namespace"]["definitions"]
    # Collections hold their members (properties by name) with the definitions on top.
    assert served["namespaces"]["properties"]["namespaces"]["items"]["name"] == "namespace"
    assert "definitions" in served["namespaces"]
    assert "definitions" not in served["namespaces"]["properties"]["namespaces"]["items"]
    keyed = served["properties"]["properties"]["properties"]["additionalProperties"]
    assert keyed["required"] == ["type", "title"]
    assert served["property"]["required"] == ["type", "title", "name"]
    doc = {"namespace": "OS::Compute::Quota", "display_name": "Quota", "visibility": "public",
           "protected": True, "tags": [{"name": "t"}], "created_at": "2026-01-01T00:00:00Z"}
    assert errors(doc, served["namespace"]) == []
    assert errors({**doc, "visibility": "shared"}, served["namespace"]) != []
    assert client.get("/v2/schemas/metadefs/nothing").status_code == 404
