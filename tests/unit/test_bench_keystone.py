"""The pure parts of `atwill bench api --keystone`: no Keystone venv needed."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from atwill.bench import keystone


def test_config_keeps_everything_in_the_temporary_directory(tmp_path: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(keystone.render_config(tmp_path))
    assert parser["token"]["provider"] == "fernet"
    assert parser["database"]["connection"] == f"sqlite:///{tmp_path}/keystone.db"
    assert parser["fernet_tokens"]["key_repository"] == str(tmp_path / "fernet-keys")
    assert parser["credential"]["key_repository"] == str(tmp_path / "credential-keys")
    assert parser["DEFAULT"]["log_file"].startswith(str(tmp_path))
    assert parser["cache"]["enabled"] == "true"


def test_the_uncached_variant_is_keystone_as_shipped(tmp_path: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read_string(keystone.render_config(tmp_path, cache=False))
    assert not parser.has_section("cache")
    assert keystone.VARIANTS == {"nocache": False, "cached": True}


def test_gunicorn_serves_the_shim_on_loopback_with_the_asked_workers(tmp_path: Path) -> None:
    args = keystone.gunicorn_args(Path("/v"), tmp_path, 5123, 2)
    assert args[0] == "/v/bin/gunicorn"
    assert args[args.index("--workers") + 1] == "2"
    assert args[args.index("--bind") + 1] == "127.0.0.1:5123"
    assert args[args.index("--pythonpath") + 1] == str(tmp_path)
    assert args[-1] == "ks_wsgi:application"
    assert "sys.argv = sys.argv[:1]" in keystone.WSGI_SHIM


def test_issue_body_is_password_and_project_scoped() -> None:
    body = keystone.issue_body("pw")["auth"]
    assert body["identity"]["password"]["user"]["password"] == "pw"
    assert body["scope"]["project"]["name"] == "admin"


def test_ratios_are_atwill_over_keystone_and_skip_missing_or_zero() -> None:
    atwill = {"token_validate_per_s": 2000.0, "token_issue_per_s": 50.0,
              "version_doc_per_s": 3000.0}
    ratio = keystone.ratios(atwill, {"token_validate_per_s": 40.0, "token_issue_per_s": 0.0},
                            "keystone_cached")
    assert ratio == {"token_validate_per_s_vs_keystone_cached": pytest.approx(50.0)}


def test_verdicts_say_met_or_missed_against_the_goals() -> None:
    lines = keystone.verdicts({"token_validate_per_s_vs_keystone": 39.9,
                               "token_issue_per_s_vs_keystone": 5.0})
    assert lines == [
        "token_validate_per_s atwill/keystone 39.9x (goal >= 40x): missed",
        "token_issue_per_s atwill/keystone 5.0x (goal >= 5x): met"]


def test_the_venv_lives_in_the_cache_not_the_project(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATWILL_CACHE_DIR", str(tmp_path))
    assert keystone.venv_dir() == tmp_path / "keystone-venv"
