"""The bundle a second controller is made from (controller/ha_controllers_bundle.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from atwill import config
from atwill.controller import ha_controllers_bundle as bundle

PASS = "correct horse battery"


def _state(tmp_path: Path) -> config.Settings:
    """A state directory as `atwill init` leaves it (the files the bundle reads)."""
    state = tmp_path / "a"
    for rel, data in {"fernet-keys/0": b"k0", "fernet-keys/1": b"k1", "pki/ca.pem": b"CA",
                      "pki/ca-key.pem": b"CAKEY", "pki/controller-key.pem": b"OWNKEY",
                      "fence.key": b"F", "admin-password": b"pw\n",
                      "controller-leader.lock": b""}.items():
        (state / rel).parent.mkdir(parents=True, exist_ok=True)
        (state / rel).write_bytes(data)
    (state / "atwill.yaml").write_text(yaml.safe_dump({
        "database_url": "postgresql://u:p@db/atwill", "port": 8686, "public_host": "a.example",
        "overlay": "none", "region": "R2", "workers": 4}))
    return config.load(state)


def test_a_bundle_carries_the_shared_keys_and_settings_not_the_machines_own(
        tmp_path: Path) -> None:
    sealed = bundle.seal(bundle.collect(_state(tmp_path)), PASS)
    assert b"CAKEY" not in sealed and b"postgresql" not in sealed  # encrypted
    content = bundle.unseal(sealed, PASS)
    new = tmp_path / "b"
    bundle.install(content, new, {"port": 9000, "public_host": "b.example",
                                  "listen_host": None})
    for rel in ("fernet-keys/0", "fernet-keys/1", "pki/ca-key.pem", "fence.key"):
        assert (new / rel).read_bytes() == (tmp_path / "a" / rel).read_bytes()
        assert (new / rel).stat().st_mode & 0o077 == 0
    # Its own TLS key is made on the new machine; locks and stamps are per machine.
    assert not (new / "pki/controller-key.pem").exists()
    assert not (new / "controller-leader.lock").exists()
    settings = config.load(new)
    assert (settings.database_url, settings.region) == ("postgresql://u:p@db/atwill", "R2")
    assert (settings.port, settings.public_host, settings.workers) == (9000, "b.example", 0)
    assert settings.controllers == ["https://b.example:9000", "https://a.example:8686"]
    # Its certificate must also name the catalog's host (a load balancer or DNS name).
    assert bundle.cloud_host(new) == "a.example"
    assert bundle.cloud_host(tmp_path / "a") is None


def test_a_wrong_passphrase_or_an_altered_bundle_is_refused(tmp_path: Path) -> None:
    sealed = bundle.seal(bundle.collect(_state(tmp_path)), PASS)
    with pytest.raises(bundle.BundleError, match="passphrase does not open"):
        bundle.unseal(sealed, "another passphrase")
    outer = json.loads(sealed)
    outer["sealed"] = outer["sealed"][:-8] + "AAAAAAAA"
    with pytest.raises(bundle.BundleError, match="altered"):
        bundle.unseal(json.dumps(outer).encode(), PASS)
    with pytest.raises(bundle.BundleError, match="not a controller bundle"):
        bundle.unseal(b"{}", PASS)
    with pytest.raises(bundle.BundleError, match="at least 8"):
        bundle.seal({}, "short")


def test_a_bundle_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "b.bundle"
    bundle.write_new(path, b"x")
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(bundle.BundleError, match="exists"):
        bundle.write_new(path, b"y")
    path.chmod(0o644)
    with pytest.raises(bundle.BundleError, match="can be read by others"):
        bundle.read_private(path)


def test_sqlite_cannot_be_shared_and_an_existing_controller_is_kept(tmp_path: Path) -> None:
    settings = _state(tmp_path)
    (settings.path("atwill.yaml")).write_text(yaml.safe_dump({"overlay": "none"}))
    with pytest.raises(bundle.BundleError, match="PostgreSQL"):
        bundle.collect(config.load(settings.state_dir))
    with pytest.raises(bundle.BundleError, match="already holds a controller"):
        bundle.install({"files": {}, "settings": {}}, settings.state_dir, {})
    with pytest.raises(bundle.BundleError, match="outside the state directory"):
        bundle.install({"files": {"../evil": "eA=="}, "settings": {}}, tmp_path / "c", {})


def test_the_controllers_setting_lists_this_one_once() -> None:
    settings = config.Settings(public_host="b", port=1, controller_urls="https://a:1, https://b:1/")
    assert settings.controllers == ["https://a:1", "https://b:1"]
    assert config.Settings(public_host="b", port=1).controllers == ["https://b:1"]
    assert bundle.join_urls("https://a:1", "https://b:1") == "https://a:1,https://b:1"
    assert bundle.join_urls("https://a:1,https://b:1", "https://b:1") == "https://a:1,https://b:1"
