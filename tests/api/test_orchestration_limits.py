"""A template whose nested stacks nest themselves is refused at create (Heat's
max_nested_stack_depth, 5); nested stacks within it still stop at the project's stack limit
(Heat's max_stacks_per_tenant) instead of growing without end (review findings)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from sqlalchemy import text

from tests.api.lockout_cloud import own_cloud
from tests.api.test_orchestration_stacks import Env, make_env
from tests.cloud import Cloud, unique

LIMIT = 4
# Two copies of itself per level: 2**n stacks at depth n without a limit.
BOMB = {"heat_template_version": "2021-04-16", "resources": {
    "left": {"type": "bomb.yaml"}, "right": {"type": "bomb.yaml"}}}


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, max_stacks_per_project=LIMIT, ha_auto_evacuate=False)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(cloud, tmp_path_factory, "heatlim")


def _stacks(env: Env) -> int:
    with env.db.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM orchestration_stacks WHERE "
                                 "project_id = :p"), {"p": env.project_id}).scalar_one()


def test_a_self_nesting_template_is_refused_at_create_with_heats_depth_limit(env: Env) -> None:
    # Sent as the API takes it (heatclient itself recurses forever reading such files).
    name = unique("bomb")
    with env.cloud.http(env.cloud.token(env.user)) as client:
        resp = client.post(f"/orchestration/v1/{env.project_id}/stacks", json={
            "stack_name": name, "template": BOMB,
            "files": {"bomb.yaml": yaml.safe_dump(BOMB)}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == {
        "message": "Request limit exceeded: Recursion depth exceeds 5.",
        "type": "RequestLimitExceeded", "traceback": None}
    assert _stacks(env) == 0


def test_a_template_through_another_nesting_itself_is_refused_by_the_cli(env: Env) -> None:
    # Through the CLI: a file template whose registry alias names the top template again.
    top = {"heat_template_version": "2021-04-16", "resources": {"inner": {"type": "My::Ping"}}}
    ping = {"heat_template_version": "2021-04-16", "resources": {"back": {"type": "pong.yaml"}}}
    pong = {"heat_template_version": "2021-04-16", "resources": {"again": {"type": "My::Ping"}}}
    tmp = env.tmp
    (tmp / "ping.yaml").write_text(yaml.safe_dump(ping))
    (tmp / "pong.yaml").write_text(yaml.safe_dump(pong))
    (tmp / "top.yaml").write_text(yaml.safe_dump(top))
    (tmp / "env.yaml").write_text(yaml.safe_dump(
        {"resource_registry": {"My::Ping": str(tmp / "ping.yaml")}}))
    failed = env.stack("create", "-t", str(tmp / "top.yaml"), "-e", str(tmp / "env.yaml"),
                       unique("pingpong"), check=False)
    assert failed.returncode != 0
    assert "Recursion depth exceeds 5." in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    assert _stacks(env) == 0


def test_the_stack_limit_still_bounds_nested_stacks(env: Env) -> None:
    # Within the depth limit, a wide template meets the project's stack limit instead.
    leaf = {"heat_template_version": "2021-04-16", "resources": {}}
    wide = {"heat_template_version": "2021-04-16", "resources": {
        f"r{i}": {"type": "leaf.yaml"} for i in range(LIMIT + 1)}}
    name = unique("wide")
    with env.cloud.http(env.cloud.token(env.user)) as client:
        resp = client.post(f"/orchestration/v1/{env.project_id}/stacks", json={
            "stack_name": name, "template": wide, "files": {"leaf.yaml": yaml.safe_dump(leaf)}})
    assert resp.status_code == 201, resp.text
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_FAILED", shown
    assert _stacks(env) <= LIMIT
    env.delete(name)
    assert _stacks(env) == 0


def test_the_limit_answers_heats_message(env: Env) -> None:
    names = [unique("full") for _ in range(LIMIT)]
    empty = env.template({"heat_template_version": "2021-04-16", "resources": {}})
    for name in names:
        env.stack("create", "-t", empty, name)
    try:
        with env.cloud.http(env.cloud.token(env.user)) as client:
            resp = client.post(f"/orchestration/v1/{env.project_id}/stacks", json={
                "stack_name": unique("over"), "template": {
                    "heat_template_version": "2021-04-16", "resources": {}}})
        assert resp.status_code == 400, resp.text
        assert f"maximum stacks per tenant, {LIMIT}" in resp.text
        assert _stacks(env) == LIMIT
    finally:
        for name in names:
            env.delete(name)
