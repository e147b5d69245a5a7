"""What several controllers of one cloud share, sealed in a bundle for a new controller.

Controllers on one PostgreSQL agree on everything the database holds; what lives in the
state directory and must be the same on each is listed here: the Fernet token keys (a
token made by one validates on another), the cluster CA and its key (node certificates,
the peer sealing key), the fence secrets key, the metrics scrape token, the admin
password (clouds.yaml), and the settings in atwill.yaml but those of one machine (where it
listens, its own public name, its workers, its overlay address). Each controller makes
its own overlay key (a WireGuard peer of its own, cluster/controller_peer.py). Each
controller keeps its own TLS certificate, issued from the shared CA for its names.

`atwill controller export-bundle` seals them with a passphrase (scrypt, then Fernet:
authenticated, so a wrong passphrase or a changed byte is refused); the file is written
0600 and `atwill controller add` refuses one that others can read.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..config import CONFIG_FILE, Settings
from .keys import initialised

FORMAT = "atwill-controller-bundle/1"
# Files of the state directory every controller must hold alike (relative paths).
# Not the overlay key: each controller is a WireGuard peer of its own (controller_peer).
SHARED_FILES = ("pki/ca.pem", "pki/ca-key.pem", "fence.key", "metrics-token",
                "admin-password")
# The token keys' files (imported into the database at the first start: then renamed, and
# carried only so that the new controller counts as initialised; it never reads them).
SHARED_DIRS = ("fernet-keys", "fernet-keys.imported")
# Settings of one machine: not carried over.
OWN_SETTINGS = ("listen_host", "port", "public_host", "workers", "overlay_address",
                "overlay_endpoint")
# Written by install(): `atwill init` there would move the catalog to this controller.
ADDED_FILE = "controller-added.json"


class BundleError(Exception):
    """A bundle that cannot be made or used; the message says why."""


def _fernet(passphrase: str, salt: bytes) -> Fernet:
    if len(passphrase) < 8:
        raise BundleError("the bundle passphrase must have at least 8 characters")
    key = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def collect(settings: Settings) -> dict[str, Any]:
    """The shared files (base64) and settings of an initialised state directory."""
    if not settings.effective_database_url.startswith("postgresql"):
        raise BundleError("several controllers share one PostgreSQL database; this one "
                          "uses SQLite (set database_url to a postgresql:// URL)")
    if not initialised(settings.path("fernet-keys")):
        raise BundleError(f"{settings.state_dir} is not initialised; run 'atwill init'")
    files: dict[str, str] = {}
    paths = [settings.path(rel) for rel in SHARED_FILES]
    for directory in SHARED_DIRS:
        if settings.path(directory).is_dir():
            paths += sorted(p for p in settings.path(directory).iterdir() if p.is_file())
    for path in paths:
        if path.exists():
            files[str(path.relative_to(settings.state_dir))] = \
                base64.b64encode(path.read_bytes()).decode()
    raw = yaml.safe_load(settings.path(CONFIG_FILE).read_text()) or {}
    shared = {k: v for k, v in raw.items() if k not in OWN_SETTINGS}
    shared["controller_urls"] = ",".join(settings.controllers)
    # The catalog's URL (made by this controller's init): every controller's certificate
    # names its host, so a load balancer or DNS name there may send clients to any.
    # An added controller passes on the URL its own bundle named (the rows' URL).
    return {"files": files, "settings": shared,
            "cloud_url": _added_cloud_url(settings.state_dir) or settings.public_url}


def seal(content: dict[str, Any], passphrase: str) -> bytes:
    salt = os.urandom(16)
    token = _fernet(passphrase, salt).encrypt(json.dumps(content).encode())
    return json.dumps({"format": FORMAT, "salt": base64.b64encode(salt).decode(),
                       "sealed": token.decode()}).encode()


def unseal(data: bytes, passphrase: str) -> dict[str, Any]:
    try:
        outer = json.loads(data)
        if not isinstance(outer, dict) or outer.get("format") != FORMAT:
            raise ValueError
        salt = base64.b64decode(outer["salt"])
        sealed = outer["sealed"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BundleError(f"not a controller bundle ({FORMAT})") from None
    try:
        return json.loads(_fernet(passphrase, salt).decrypt(sealed))
    except InvalidToken:
        raise BundleError("the passphrase does not open this bundle (or it was "
                          "altered)") from None


def write_new(path: Path, data: bytes) -> None:
    """Create path 0600; an existing file is never overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BundleError(f"{path} exists; choose another file") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def read_private(path: Path) -> bytes:
    """The bundle's bytes, if only its owner can read it (as ssh checks its keys)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise BundleError(f"{path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BundleError(f"{path} can be read by others (mode {stat.S_IMODE(mode):o}); "
                          f"it holds the cloud's keys: chmod 600 it, and ask whether it "
                          "leaked")
    return path.read_bytes()


def install(content: dict[str, Any], state_dir: Path, own: dict[str, Any]) -> list[str]:
    """Write the shared files and settings into a new state directory, with this
    machine's own settings (own: listen_host, port, public_host); returns the changes."""
    if (state_dir / CONFIG_FILE).exists() or initialised(state_dir / "fernet-keys"):
        raise BundleError(f"{state_dir} already holds a controller; use an empty directory")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for rel, encoded in sorted(content["files"].items()):
        target = (state_dir / rel).resolve()
        if not target.is_relative_to(state_dir.resolve()) or rel.startswith("/"):
            raise BundleError(f"the bundle names a file outside the state directory: {rel}")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(base64.b64decode(encoded))
    values = {**content["settings"], **{k: v for k, v in own.items() if v is not None}}
    (state_dir / CONFIG_FILE).write_text(yaml.safe_dump(values, sort_keys=True))
    (state_dir / ADDED_FILE).write_text(json.dumps({"cloud_url": content.get("cloud_url")}))
    return [f"wrote {len(content['files'])} shared files and {CONFIG_FILE} in {state_dir}"]


def _added_cloud_url(state_dir: Path) -> str | None:
    try:
        url = json.loads((state_dir / ADDED_FILE).read_text()).get("cloud_url")
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return url if isinstance(url, str) and url else None


def cloud_host(state_dir: Path) -> str | None:
    """The catalog URL's host of a controller made from a bundle (None: not one)."""
    try:
        url = json.loads((state_dir / ADDED_FILE).read_text()).get("cloud_url") or ""
    except (FileNotFoundError, ValueError, AttributeError):
        return None
    return url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") or None


def join_urls(listed: str, url: str) -> str:
    """The comma-separated list with url added (once)."""
    urls = [u for u in listed.split(",") if u]
    return ",".join(urls if url in urls else [*urls, url])
