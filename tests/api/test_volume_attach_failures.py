"""Issue 12: no volume stays attaching or detaching while both its nodes are up.

A storage node that cannot export the volume, and an attach or detach nobody answers
within volume_transition_timeout, end as Nova's failed attach (rolled back, an error
event on the server's action) and failed detach (it stays attached). A timed-out attach
the compute node was given is unwound through that node, whose later word wins.
Agent-less nodes (test_server_volumes' Env); "an hour ago" is written in the rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update

from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.controller.volume.attach_outcomes import NODE_DETACH_FAILED, NOT_EXPORTED, UNWIND_KEY
from tests.api.aggregate_nodes import wait_for
from tests.api.test_server_volumes import Env, V, _boot, env, mv  # noqa: F401 - env: fixture
from tests.api.test_volume_api import gone

V3 = "/volume/v3"
SWEEP = 20.0  # the sweep runs every 5 s on the monitor's leader


def _status(env: Env, vid: str) -> str:  # noqa: F811
    with env.client("admin") as client:
        resp = client.get(f"{V3}/volumes/{vid}")
    assert resp.status_code == 200, resp.text
    return resp.json()["volume"]["status"]


def _attach(env: Env, user: str, server: str, vid: str) -> str:  # noqa: F811
    """Attach; the request's id (its attach_volume action's)."""
    with env.client(user) as client:
        resp = client.post(f"{V}/servers/{server}/os-volume_attachments", headers=mv("2.79"),
                           json={"volumeAttachment": {"volumeId": vid}})
    assert resp.status_code == 200, resp.text
    return resp.headers["x-openstack-request-id"]


def _attached(env: Env, user: str, server: str) -> list[str]:  # noqa: F811
    with env.client(user) as client:
        resp = client.get(f"{V}/servers/{server}/os-volume_attachments")
    assert resp.status_code == 200, resp.text
    return sorted(a["volumeId"] for a in resp.json()["volumeAttachments"])


def _events(env: Env, user: str, server: str, action: str) -> tuple[str | None, list]:  # noqa: F811
    """The server's latest `action`: its message and its events (details at 2.84)."""
    with env.client(user) as client:
        listed = client.get(f"{V}/servers/{server}/os-instance-actions").json()
        found = next(a for a in listed["instanceActions"] if a["action"] == action)
        shown = client.get(f"{V}/servers/{server}/os-instance-actions/{found['request_id']}",
                           headers=mv("2.84")).json()["instanceAction"]
    return found["message"], shown["events"]


def _all_events(env: Env, user: str, server: str, action: str) -> list:  # noqa: F811
    with env.client(user) as client:
        listed = client.get(f"{V}/servers/{server}/os-instance-actions").json()
        out = []
        for found in listed["instanceActions"]:
            if found["action"] == action:
                out += client.get(f"{V}/servers/{server}/os-instance-actions/"
                                  f"{found['request_id']}",
                                  headers=mv("2.84")).json()["instanceAction"]["events"]
    return out


def _rows(env: Env, vid: str, **values: Any) -> None:  # noqa: F811
    """Write the volume's attachment rows (and, with began, its start an hour back)."""
    db = Database(env.cloud.db_url())
    try:
        with db.session() as session:
            if values.pop("began_long_ago", False):
                hour_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
                session.execute(update(VolumeAttachment).where(
                    VolumeAttachment.volume_id == vid).values(created_at=hour_ago,
                                                              updated_at=hour_ago))
                session.execute(update(Volume).where(Volume.id == vid).values(
                    updated_at=hour_ago))
            volume_status = values.pop("volume_status", None)
            if values:
                session.execute(update(VolumeAttachment).where(
                    VolumeAttachment.volume_id == vid).values(**values))
            if volume_status:
                session.execute(update(Volume).where(Volume.id == vid).values(
                    status=volume_status))
    finally:
        db.dispose()


def _export_fails(env: Env, vids: tuple[str, ...], why: str) -> None:  # noqa: F811
    """The storage node's report: every volume as converge makes it, but the exports of
    vids to the compute node failing (its agent keeps trying)."""
    wanted = env.storage.wanted()
    env.storage.report({v: {"state": "available", "size_gb": w["size_gb"],
                            "snapshots": dict.fromkeys(w["snapshots"], "available"),
                            "exports": {} if v in vids else {
                                e["node_id"]: {"host": "10.99.0.5", "port": 10809 + i}
                                for i, e in enumerate(w["exports"])},
                            **({"export_errors": {env.compute.id: why}} if v in vids else {})}
                        for v, w in wanted.items()})


def test_an_export_that_fails_rolls_the_attach_back(env: Env) -> None:  # noqa: F811
    """Failed before: the storage node's export_errors were ignored, the volume stayed
    attaching for ever (the agent retrying the export at each converge)."""
    user = env.users[0]
    server, vid, root = env.server(user), env.volume(user), env.volume(user)
    servers = [server]
    try:
        _attach(env, user, server, vid)
        assert _status(env, vid) == "attaching"
        env.cloud.openstack("volume", "set", "--bootable", root, user=user)
        servers.append(_boot(env, user, "--volume", root))  # BUILD until it is exported
        why = "qemu-storage-daemon exited: Could not open '/srv/v/x.qcow2': No such file"
        _export_fails(env, (vid, root), why)
        built = env.cloud.openstack("server", "show", servers[1], "-f", "json", user=user)
        assert built["status"] == "ERROR", built
        assert "Failure prepping block device" in built["fault"]["message"]
        # The owner reads why, without the nodes' names or words (Nova hides hosts).
        assert NOT_EXPORTED in built["fault"]["message"]
        assert why not in built["fault"]["message"]
        assert _status(env, vid) == "available"
        assert _attached(env, user, server) == []
        assert env.storage.wanted()[vid]["exports"] == []
        message, events = _events(env, user, server, "attach_volume")
        assert NOT_EXPORTED in (message or "") and why not in (message or "")
        assert [(e["event"], e["result"]) for e in events] == [
            ("compute_attach_volume", "Error")]
        details = events[0]["details"]
        assert NOT_EXPORTED in details and why not in details
        assert env.storage.name not in details and env.compute.name not in details
    finally:
        env.storage.converge()  # healthy again (its beats repeat the last report)
        for made in servers:
            env.delete_server(made)
        for volume in (vid, root):
            gone(env.cloud, env.storage, volume)


def test_an_attach_nobody_answers_ends(env: Env) -> None:  # noqa: F811
    """Never exported (the storage node says nothing of it): rolled back by the timer.
    Exported but the compute node silent on it: unwound through the node, whose report
    (not listed) then rolls it back. Both stayed attaching for ever before."""
    user = env.users[0]
    server, never, silent = env.server(user), env.volume(user), env.volume(user)
    try:
        _attach(env, user, server, never)  # its storage node's beats never export it
        _rows(env, never, began_long_ago=True)
        wait_for(lambda: _status(env, never) == "available", SWEEP, "the rollback")
        assert _attached(env, user, server) == []
        message, _ = _events(env, user, server, "attach_volume")
        assert "did not complete within 600 s" in (message or "")

        _attach(env, user, server, silent)
        env.storage.converge()  # exported: the compute node is given it, says nothing
        assert [v["volume_id"] for v in env.spec(server)["volumes"]] == [silent]
        _rows(env, silent, began_long_ago=True)
        # Unwound (the node asked to let go, the export kept), then the node's report,
        # which does not list it, releases it; the export goes with the storage node.
        wait_for(lambda: _status(env, silent) in ("detaching", "available"), SWEEP,
                 "the unwind")
        # The node no longer asked to hold it: unwound ([]) or, the compute node's
        # background beat (0.5 s) having released it already, no volumes at all (no key;
        # the volume stays detaching until its export goes: this raised KeyError in one
        # run of two).
        assert env.spec(server).get("volumes") in ([], None)
        wait_for(lambda: _attached(env, user, server) == [], SWEEP, "the release")
        env.storage.converge()
        assert _status(env, silent) == "available"
        message, events = _events(env, user, server, "attach_volume")
        assert "did not complete within 600 s" in (message or "")
        assert events[-1]["event"] == "compute_attach_volume"
    finally:
        env.storage.converge()
        env.delete_server(server)
        for vid in (never, silent):
            gone(env.cloud, env.storage, vid)


def test_an_unwound_attach_its_node_holds_stays(env: Env) -> None:  # noqa: F811
    """The node's later word wins: an attach being unwound that its node reports
    attached (it got there late) is attached after all, never taken from the guest."""
    user = env.users[0]
    server, vid = env.server(user), env.volume(user)
    try:
        _attach(env, user, server, vid)
        env.storage.converge()
        env.report(server, {vid: "attached"})
        assert _status(env, vid) == "in-use"
        # As the timer leaves it (its node's reports then settle it).
        _rows(env, vid, status="detaching", connector={"host": env.compute.name,
                                                       UNWIND_KEY: "timed out"},
              volume_status="detaching")
        env.report(server, {vid: "error: the guest did not release the disk"})
        assert _status(env, vid) == "in-use"
        assert _attached(env, user, server) == [vid]
        assert [v["volume_id"] for v in env.spec(server)["volumes"]] == [vid]
    finally:
        env.delete_server(server)
        gone(env.cloud, env.storage, vid)


def test_a_detach_that_fails_stays_attached(env: Env) -> None:  # noqa: F811
    """The node cannot unplug (the guest keeps the disk) past Nova's retries, or says
    nothing of a detach for the bound: attached again, in-use, an error event. Both
    stayed detaching for ever before."""
    user = env.users[0]
    server, held, quiet = env.server(user), env.volume(user), env.volume(user)
    try:
        for vid in (held, quiet):
            _attach(env, user, server, vid)
        env.storage.converge()
        env.report(server, {held: "attached", quiet: "attached"})
        for vid in (held, quiet):
            env.cloud.openstack("server", "remove", "volume", server, vid, user=user)
            assert _status(env, vid) == "detaching"
        why = "the guest did not release the disk within 20 s"
        env.report(server, {held: f"error: {why}", quiet: "attached"})
        assert _status(env, held) == "detaching"  # its agent tries again meanwhile
        for vid in (held, quiet):
            _rows(env, vid, began_long_ago=True)
        for vid in (held, quiet):
            wait_for(lambda v=vid: _status(env, v) == "in-use", SWEEP, "the restore")
        assert _attached(env, user, server) == sorted([held, quiet])
        assert sorted(v["volume_id"] for v in env.spec(server)["volumes"]) == sorted(
            [held, quiet])
        # Each restore's event goes to a detach_volume action (to the latest one here:
        # the rows say the detaches began an hour ago, before either action).
        details = [(e["event"], e["result"], e["details"])
                   for e in _all_events(env, user, server, "detach_volume")]
        assert sorted(d[:2] for d in details) == [("compute_detach_volume", "Error")] * 2
        assert any(NODE_DETACH_FAILED in d[2] and held in d[2] for d in details)
        assert not any(why in d[2] for d in details)  # the agent's words: the log's
        assert any("did not complete within 600 s" in d[2] and quiet in d[2]
                   for d in details)
        env.report(server, {held: "attached", quiet: "attached"})
    finally:
        env.delete_server(server)
        for vid in (held, quiet):
            gone(env.cloud, env.storage, vid)


def test_each_attach_error_goes_on_its_own_action(env: Env) -> None:  # noqa: F811
    """Two attaches of one server in flight, the first failing: its error event goes on
    its own request's attach_volume action. Failed before: it went on the second's (the
    latest action begun within 5 s of the attachment), the first's had no event."""
    user = env.users[0]
    server, first, second = env.server(user), env.volume(user), env.volume(user)
    try:
        asked = [_attach(env, user, server, vid) for vid in (first, second)]
        env.report(server, {first: "error: cannot connect"})
        assert (_status(env, first), _status(env, second)) == ("available", "attaching")
        with env.client(user) as client:
            events = {request: client.get(
                f"{V}/servers/{server}/os-instance-actions/{request}",
                headers=mv("2.84")).json()["instanceAction"]["events"] for request in asked}
        assert [(e["event"], e["result"]) for e in events[asked[0]]] == [
            ("compute_attach_volume", "Error")]
        assert first in events[asked[0]][0]["details"]
        assert events[asked[1]] == []
    finally:
        env.delete_server(server)
        for vid in (first, second):
            gone(env.cloud, env.storage, vid)
