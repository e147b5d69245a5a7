"""core/clouds_config and controller/state.write_credentials: clouds.yaml names the load
balancer's cloud as `atwill` when set, and one cloud per controller with several ways in."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from atwill.config import Settings
from atwill.controller.controllers import register
from atwill.controller.db.base import Base
from atwill.controller.db.session import Database
from atwill.controller.state import refresh_credentials, tls_hosts, write_credentials
from atwill.core.clouds_config import clouds, controller_names, skipped

BASE = {"auth": {"username": "admin", "password": "pw"}, "region_name": "RegionOne",
        "interface": "public", "identity_api_version": 3}
CTL1, CTL2, LB = "https://ctl1.example:8686", "https://10.0.0.3:8686", "https://cloud.example"


def test_one_controller_is_one_cloud_as_before() -> None:
    out = clouds(BASE, CTL1, [CTL1])
    assert list(out) == ["atwill"]
    assert out["atwill"]["auth"] == {"auth_url": f"{CTL1}/identity", "username": "admin",
                                     "password": "pw"}
    assert out["atwill"]["interface"] == "public"
    assert list(out["atwill"]) == ["auth", "region_name", "interface", "identity_api_version"]


def test_several_controllers_get_a_cloud_each_on_the_internal_interface() -> None:
    out = clouds(BASE, CTL2, [CTL1, CTL2])
    assert list(out) == ["atwill", "atwill-10.0.0.3", "atwill-ctl1.example"]
    assert out["atwill"]["auth"]["auth_url"] == f"{CTL2}/identity"
    assert out["atwill-ctl1.example"]["auth"]["auth_url"] == f"{CTL1}/identity"
    assert out["atwill-ctl1.example"]["interface"] == "internal"
    assert out["atwill-10.0.0.3"]["auth"]["password"] == "pw"
    assert BASE["interface"] == "public" and "auth_url" not in BASE["auth"]  # not changed


def test_the_public_endpoint_is_the_atwill_cloud() -> None:
    out = clouds(BASE, CTL1, [CTL1], LB)
    assert out["atwill"]["auth"]["auth_url"] == f"{LB}/identity"
    assert out["atwill"]["interface"] == "public"
    assert out["atwill-ctl1.example"]["auth"]["auth_url"] == f"{CTL1}/identity"


def test_controllers_on_one_host_are_told_apart_by_port() -> None:
    names = controller_names(["https://127.0.0.1:8001", "https://127.0.0.1:8002/",
                              "https://ctl3:8686", "https://127.0.0.1:8001"])
    assert names == {"https://127.0.0.1:8001": "atwill-127.0.0.1-8001",
                     "https://127.0.0.1:8002": "atwill-127.0.0.1-8002",
                     "https://ctl3:8686": "atwill-ctl3"}


def test_write_credentials_lists_configured_and_registered_controllers(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example",
                        controller_urls=CTL2, public_endpoint=LB)
    assert write_credentials(settings, "pw", ["https://ctl9.example:8686"])
    data = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
    assert sorted(data) == ["atwill", "atwill-10.0.0.3", "atwill-ctl1.example",
                            "atwill-ctl9.example"]
    assert data["atwill"]["auth"]["auth_url"] == f"{LB}/identity"
    assert data["atwill"]["cacert"] == str(tmp_path / "pki" / "ca.pem")
    openrc = (tmp_path / "openrc").read_text()
    assert f"OS_AUTH_URL={LB}/identity\n" in openrc and "OS_INTERFACE=public" in openrc
    assert (tmp_path / "clouds.yaml").stat().st_mode & 0o077 == 0
    assert write_credentials(settings, "pw", ["https://ctl9.example:8686"]) == []


def test_the_certificate_names_the_public_endpoint_host(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, overlay="none", public_endpoint=LB)
    assert "cloud.example" in tls_hosts(settings)


def test_refresh_adds_the_controllers_live_in_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    database = Database(url)
    try:
        Base.metadata.create_all(database.engine)
        with database.session() as session:
            register(session, "https://ctl2.example:8686")
    finally:
        database.dispose()
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example", database_url=url)
    (tmp_path / "admin-password").write_text("pw\n")
    changes, registered = refresh_credentials(settings)
    assert registered == ["https://ctl2.example:8686"] and changes
    data = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
    assert sorted(data) == ["atwill", "atwill-ctl1.example", "atwill-ctl2.example"]
    assert data["atwill"]["auth"]["password"] == "pw"
    assert refresh_credentials(settings) == ([], registered)


def test_refresh_without_a_controller_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="run 'atwill init'"):
        refresh_credentials(Settings(state_dir=tmp_path))
    assert not (tmp_path / "clouds.yaml").exists()


# Review of issue 19 (session 15): registered rows are whatever a controller wrote in the
# shared database; names must not collide; openrc is sourced by a shell; the files hold
# the admin password.


def test_a_cloud_name_is_never_overwritten_by_a_later_url() -> None:
    # Failed before: both got atwill-ctl1-8686 and the last (http) replaced the first.
    out = clouds(BASE, CTL1, ["https://ctl1:8686", "http://ctl1:8686"])
    assert out["atwill-ctl1-8686"]["auth"]["auth_url"] == "https://ctl1:8686/identity"
    out = clouds(BASE, CTL1, ["https://ctl1:8686", "https://ctl1:9000", "https://ctl1-8686"])
    assert out["atwill-ctl1-8686"]["auth"]["auth_url"] == "https://ctl1:8686/identity"
    assert skipped(CTL1, ["https://ctl1:8686", "https://ctl1:9000", "https://ctl1-8686"]) \
        == ["https://ctl1-8686"]


def test_registered_rows_that_are_not_https_controller_urls_are_left_out(
        tmp_path: Path) -> None:
    # Failed before: every live row went into clouds.yaml with the admin password.
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example",
                        controller_urls="https://ctl2.example:8686")
    changes = write_credentials(settings, "pw", [
        "http://ctl9.example:8686", "https://ctl8.example:8686/evil", "https://u@ctl7.example",
        "https://ctl6.example:8686?x", "https://ctl5.example:8686/",
        "http://ctl2.example:8686"])
    data = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
    assert sorted(data) == ["atwill", "atwill-ctl1.example", "atwill-ctl2.example",
                            "atwill-ctl5.example"]
    assert data["atwill-ctl2.example"]["auth"]["auth_url"] == \
        "https://ctl2.example:8686/identity"
    assert not any("no cloud for" in c for c in changes)
    # An insecure-http controller names no registered row (https only).
    plain = Settings(state_dir=tmp_path, public_host="ctl1.example", tls=False)
    write_credentials(plain, "pw", ["https://ctl5.example:8686", "http://ctl4.example:8686"])
    assert sorted(yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]) == \
        ["atwill"]


def test_a_registered_row_cannot_take_a_configured_controllers_cloud(tmp_path: Path) -> None:
    # Failed before: the row's cloud replaced the configured one (last wins).
    settings = Settings(state_dir=tmp_path, public_host="ctl1",
                        controller_urls="https://ctl1:8686,https://ctl1:9000")
    changes = write_credentials(settings, "pw", ["https://ctl1-8686"])
    data = yaml.safe_load((tmp_path / "clouds.yaml").read_text())["clouds"]
    assert data["atwill-ctl1-8686"]["auth"]["auth_url"] == "https://ctl1:8686/identity"
    assert "no cloud for https://ctl1-8686: its name is taken by a controller listed " \
        "before it" in changes


def test_openrc_values_are_shell_quoted(tmp_path: Path) -> None:
    # Failed before: OS_REGION_NAME (and OS_AUTH_URL) were written unquoted, OS_PASSWORD
    # in single quotes a quote in it ended: sourcing openrc ran what they held.
    marker = tmp_path / "ran"
    region = f"r1;touch {marker}`touch {marker}`$(touch {marker})"
    password = f"p'w;touch {marker}"
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example", region=region)
    write_credentials(settings, password)
    shown = subprocess.run(
        ["bash", "-c", f". {tmp_path / 'openrc'} && printf '%s\\n' \"$OS_REGION_NAME\" "
                       "\"$OS_PASSWORD\" \"$OS_AUTH_URL\""],
        capture_output=True, text=True, check=True, timeout=10).stdout.splitlines()
    assert shown == [region, password, "https://ctl1.example:8686/identity"]
    assert not marker.exists()


def test_credentials_are_replaced_0600_never_written_through_a_link(tmp_path: Path) -> None:
    # Failed before: an existing 0644 file kept its mode with the password in it, and a
    # symlink at clouds.yaml was followed (the password written to its target).
    settings = Settings(state_dir=tmp_path, public_host="ctl1.example")
    (tmp_path / "openrc").write_text("old\n")
    (tmp_path / "openrc").chmod(0o644)
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    target.chmod(0o644)
    (tmp_path / "clouds.yaml").symlink_to(target)
    write_credentials(settings, "pw")
    for name in ("openrc", "clouds.yaml"):
        path = tmp_path / name
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "pw" in path.read_text()
    assert target.read_text() == "untouched\n"
    # Same text but a loose mode (a file from before): rewritten 0600 all the same.
    (tmp_path / "openrc").chmod(0o644)
    assert write_credentials(settings, "pw") == [f"wrote {tmp_path / 'openrc'}"]
    assert stat.S_IMODE((tmp_path / "openrc").stat().st_mode) == 0o600
    assert write_credentials(settings, "pw") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clouds.yaml", "elsewhere", "openrc"]
