"""A node joins only with a WireGuard public key of its own.

Every peer list keeps the first holder of a key (core/overlay_peers), and every node's
key is in every desired state: a node joined with another's key under an earlier-sorting
name would cut that one off from every peer. The join is refused (409) instead, and
nothing of it is kept (the token's use neither).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

import pytest

from atwill.pki import make_key_and_csr
from tests.cloud import Cloud, unique

INVENTORY = {"vcpus": 2, "memory_mb": 2048, "disk_gb": 10, "arch": "x86_64"}


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _token(cloud: Cloud) -> dict:
    return json.loads(cloud.atwill("token", "create", "--json").stdout)


def _join(cloud: Cloud, secret: str, name: str, key: str):
    _, csr = make_key_and_csr(name)
    body = {"token": secret, "name": name, "csr": csr.decode(), "inventory": INVENTORY,
            "wireguard_public_key": key}
    with cloud.http() as client:
        return client.post("/cluster/v1/join", json=body)


def _uses(cloud: Cloud, token_id: str) -> int:
    listed = json.loads(cloud.atwill("token", "list", "--json").stdout)
    return next(t["uses"] for t in listed if t["id"] == token_id)


def _names(cloud: Cloud) -> list[str]:
    return [n["name"] for n in json.loads(cloud.atwill("node", "list", "--json").stdout)]


@pytest.fixture
def joined(cloud: Cloud) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        cloud.atwill("node", "remove", name, "--force", check=False)


def test_a_join_with_another_nodes_key_is_refused(cloud: Cloud, joined: list[str]) -> None:
    key = _key()
    victim = unique("zkey")
    assert _join(cloud, _token(cloud)["token"], victim, key).status_code == 201
    joined.append(victim)
    spec = _token(cloud)
    thief = unique("akey")  # sorts first: it would have been the one peers kept
    joined.append(thief)  # removed at the end if a regression let it in
    resp = _join(cloud, spec["token"], thief, key)
    assert resp.status_code == 409, resp.text
    assert f"Node {victim} already holds this WireGuard public key" in resp.text
    assert thief not in _names(cloud) and _uses(cloud, spec["id"]) == 0
    # Its own key pair joins.
    assert _join(cloud, spec["token"], thief, _key()).status_code == 201
