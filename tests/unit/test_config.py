from pathlib import Path

import pytest

from atwill import config


def test_defaults_file_env_flags_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / config.CONFIG_FILE).write_text("port: 9000\nregion: FromFile\ntls: false\n")
    monkeypatch.setenv("ATWILL_REGION", "FromEnv")
    settings = config.load(tmp_path, log_level="debug")
    assert settings.port == 9000
    assert settings.region == "FromEnv"
    assert settings.tls is False and settings.scheme == "http"
    assert settings.log_level == "debug"
    assert config.load(tmp_path, port=9100).port == 9100


def test_bad_values_are_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATWILL_PORT", "eighty")
    with pytest.raises(ValueError, match="port"):
        config.load(tmp_path)
    monkeypatch.delenv("ATWILL_PORT")
    (tmp_path / config.CONFIG_FILE).write_text("colour: blue\n")
    with pytest.raises(ValueError, match="unknown setting"):
        config.load(tmp_path)


def test_database_url_default_and_redaction(tmp_path: Path) -> None:
    settings = config.load(tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'atwill.db'}"
    assert config.redact_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert config.redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_public_url_never_advertises_wildcard(tmp_path: Path) -> None:
    assert config.load(tmp_path, listen_host="0.0.0.0", port=1).public_url == \
        "https://127.0.0.1:1"
    assert config.load(tmp_path, public_host="cloud.example", port=2).public_url == \
        "https://cloud.example:2"
