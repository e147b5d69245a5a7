"""The usage event log across a controller restart: what the controller recorded before
it stopped is served after, unchanged, and an export to a JSON lines file made before the
restart goes on after it with only the new events.

The servers are made through the API on a cloud without nodes (each ends in ERROR, "No
valid host"), then deleted: create, state and delete events written by the controller.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.lockout_cloud import own_cloud
from tests.cloud import Cloud, unique

EVENTS = "/cluster/v1/usage-events"


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine)


def events(cloud: Cloud, **params: str | int) -> list[dict]:
    with cloud.http(cloud.token()) as client:
        resp = client.get(EVENTS, params={"limit": 1000, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["events"]


def lifecycle(cloud: Cloud, flavor: str, image: str) -> str:
    """create → error (no node) → delete, through the API."""
    made = cloud.openstack("server", "create", "--flavor", flavor, "--image", image,
                           "--no-network", unique("rsrv"), "-f", "json")
    deadline = time.monotonic() + 30
    while cloud.openstack("server", "show", made["id"], "-f", "json")["status"] != "ERROR":
        assert time.monotonic() < deadline, "the server never failed to schedule"
        time.sleep(0.2)
    cloud.openstack("server", "delete", made["id"])
    return made["id"]


def test_events_and_the_export_survive_a_restart(cloud: Cloud, tmp_path: Path) -> None:
    flavor = unique("rflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    data = tmp_path / "disk.img"
    data.write_bytes(b"\0" * 65536)
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("rimg"), "-f", "json")["id"]
    first = lifecycle(cloud, flavor, image)
    before = events(cloud)
    kinds = [e["event_type"] for e in before if e["instance_id"] == first]
    assert kinds[0] == "compute.instance.create" and kinds[-1] == "compute.instance.delete"
    out = tmp_path / "usage.jsonl"
    cloud.atwill("usage", "events", "--output", str(out))
    cloud.stop()
    cloud.start()
    assert events(cloud) == before  # kept, ids and times unchanged
    second = lifecycle(cloud, flavor, image)
    after = events(cloud)
    assert after[:len(before)] == before and len(after) > len(before)
    assert {e["instance_id"] for e in after[len(before):]} == {second}
    assert after[len(before)]["id"] > before[-1]["id"]
    exported = cloud.atwill("usage", "events", "--output", str(out)).stdout
    assert f"{len(after) - len(before)} event(s) exported" in exported
    assert [json.loads(line) for line in out.read_text().splitlines()] == after
    cloud.openstack("image", "delete", image)
    cloud.openstack("flavor", "delete", flavor)
