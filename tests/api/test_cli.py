"""The atwill command itself: init idempotency, config show, plain HTTP opt-in.

`atwill up` also runs a local agent as root, so it is tested in a namespace of its own
(tests/integration/test_up.py).
"""

from __future__ import annotations

import os
import subprocess

import yaml

from tests.cloud import BIN, Cloud


def test_init_twice_changes_nothing() -> None:
    cloud = Cloud()
    try:
        first = cloud.init().stdout
        assert "created the cluster CA" in first and "wrote" in first
        second = cloud.init().stdout
        assert "already initialised; nothing changed" in second
        clouds = yaml.safe_load((cloud.state_dir / "clouds.yaml").read_text())
        entry = clouds["clouds"]["atwill"]
        assert entry["cacert"].endswith("pki/ca.pem")
        assert entry["auth"]["auth_url"] == f"{cloud.url}/identity"
        assert (cloud.state_dir / "openrc").stat().st_mode & 0o777 == 0o600
        shown = cloud.atwill("config", "show", "--json").stdout
        assert f'"port": {cloud.port}' in shown
    finally:
        cloud.destroy()


def test_config_show_precedence() -> None:
    cloud = Cloud()
    try:
        cloud.init()
        env = dict(os.environ, ATWILL_REGION="Elsewhere")
        out = subprocess.run([str(BIN / "atwill"), "config", "show", "--state-dir",
                              str(cloud.state_dir)], capture_output=True, text=True, env=env,
                             check=True).stdout
        assert "region = Elsewhere" in out
    finally:
        cloud.destroy()


def test_plain_http_only_when_asked() -> None:
    cloud = Cloud(tls=False)
    try:
        cloud.init()
        cloud.start()
        with cloud.http() as client:
            assert client.get("/identity/v3").status_code == 200
        assert "cacert" not in (cloud.state_dir / "clouds.yaml").read_text()
        assert cloud.openstack("token", "issue", "-f", "json")["user_id"]
    finally:
        cloud.destroy()
