"""`atwill up` refuses an unusable public range before touching anything; what it prints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atwill.cli import up as up_cmd
from atwill.cli import up_host
from atwill.cli.main import app
from atwill.core.public_range import HostFacts

MIRROR = HostFacts().plus([("203.0.113.80", "deb.debian.org (203.0.113.80), a package mirror"),
                           ("192.0.2.0/24", "the host's route 192.0.2.0/24 dev eth0")])


def run(*args: str):
    return CliRunner().invoke(app, list(args), env={"ATWILL_DEBUG": None})


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(up_host, "host_facts", lambda bridge, reserved: MIRROR.plus(reserved))


def test_a_range_over_a_package_mirror_is_refused_in_one_line(tmp_path: Path,
                                                              host: None) -> None:
    state = tmp_path / "state"
    result = run("up", "--state-dir", str(state), "--public-range", "203.0.113.0/24")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "cannot start: public range 203.0.113.0/24 overlaps deb.debian.org (203.0.113.80), a "
        "package mirror; choose another with --public-range CIDR or public_range in "
        "atwill.yaml"]
    assert not state.exists()  # nothing initialised, nothing started


def test_the_configured_range_is_checked_and_the_private_network_reserved(
        tmp_path: Path, host: None) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "atwill.yaml").write_text("public_range: 10.0.0.0/16\n")
    result = run("up", "--state-dir", str(state))
    assert result.exit_code == 1
    assert "overlaps the private network 10.0.0.0/24" in result.stderr
    assert "\n" not in result.stderr.strip()


def test_the_default_range_is_clear_of_the_host(tmp_path: Path, host: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    conf = up_cmd.Settings(state_dir=tmp_path, overlay="none")
    assert up_cmd._public_range(conf, None) == "198.18.0.0/24"
    monkeypatch.setattr(up_host, "host_facts", lambda bridge, reserved: MIRROR.plus(
        [("198.18.0.0/15", "a VPN")]))
    assert up_cmd._public_range(conf, None) == "100.64.254.0/24"


def test_hints_name_the_openstack_beside_python_when_none_is_on_path(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    beside = Path(up_cmd.sys.executable).parent / "openstack"
    assert up_cmd.openstack_command() == (str(beside) if beside.exists() else "openstack")
    (tmp_path / "openstack").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "openstack", 0o755)
    assert up_cmd.openstack_command() == "openstack"


def test_up_help_says_its_overlay_default_is_none() -> None:
    result = CliRunner().invoke(app, ["up", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "none (the default for up" in result.output
    assert "wireguard (default)" not in result.output
    assert "--public-range" in result.output


def test_down_of_a_missing_state_directory_is_one_line(tmp_path: Path) -> None:
    result = run("down", "--state-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"{tmp_path / 'nothing'} does not exist; nothing to stop."
