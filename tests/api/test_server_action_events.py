"""os-instance-actions: a finished power action carries Nova's compute event name."""

from __future__ import annotations

from tests.api.test_server_image import Env, V, env, mv  # noqa: F401  (env is a fixture)


def _act(cloud_env: Env, server: str, body: dict) -> None:
    with cloud_env.cloud.http(cloud_env.cloud.token(cloud_env.user)) as client:
        resp = client.post(f"{V}/servers/{server}/action", json=body, headers=mv("2.96"))
    assert resp.status_code == 202, resp.text


def test_stop_and_start_record_novas_events(env: Env) -> None:  # noqa: F811
    server = env.server()
    _act(env, server, {"os-stop": None})
    env.node.beat({server: {"state": "shutoff"}})
    assert env.show(server)["status"] == "SHUTOFF"
    _act(env, server, {"os-start": None})
    env.node.beat({server: {"state": "running"}})
    assert env.show(server)["status"] == "ACTIVE"
    assert [e["event"] for e in env.events(server, "stop")] == ["compute_stop_instance"]
    assert [e["event"] for e in env.events(server, "start")] == ["compute_start_instance"]
    stop = env.events(server, "stop")[0]
    assert stop["result"] == "Success" and stop["host"] == env.node.name
    env.cloud.openstack("server", "delete", server, user=env.user)
