"""The state directory: keys, PKI, database and the client credential files."""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import socket
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from .. import config, pki
from ..config import Settings
from ..core import clouds_config, controller_urls
from ..core.overlay import controller_slots
from .bootstrap import bootstrap
from .cluster.controller_peer import ensure_key
from .context import Controller
from .controllers import live
from .db.session import Database

PASSWORD_FILE = "admin-password"


def admin_password(settings: Settings) -> str:
    """The admin password chosen at the first init (kept 0600 in the state directory)."""
    path = settings.path(PASSWORD_FILE)
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def tls_hosts(settings: Settings) -> list[str]:
    hosts = {"127.0.0.1", "localhost", "::1", socket.gethostname()}
    endpoint = urlsplit(settings.public_endpoint).hostname if settings.public_endpoint else None
    for host in (settings.listen_host, settings.public_host, endpoint):
        if host and host not in ("0.0.0.0", "::"):
            hosts.add(host)
    if settings.overlay != "none":
        # Nodes reach the controller through the overlay by its address there: every
        # controller slot is named (any controller may hold any; they share the CA
        # anyway), so a controller's certificate stays valid whichever it is given.
        hosts.update(controller_slots(settings.overlay_cidr))
        hosts.add(settings.overlay_ip)
    return sorted(hosts)


def initialise(settings: Settings) -> list[str]:
    """Create or complete the state directory; returns what changed (empty: nothing)."""
    changes: list[str] = []
    created = not settings.state_dir.exists()
    settings.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if created:
        changes.append(f"created {settings.state_dir}")
    if not settings.path(config.CONFIG_FILE).exists():
        config.save(settings, ["listen_host", "port", "tls", "public_host", "database_url",
                              "overlay"])
        changes.append(f"wrote {settings.path(config.CONFIG_FILE)}")
    password = admin_password(settings)
    ctl = Controller.from_settings(settings)
    try:
        if ctl.keys.create():
            changes.append("created Fernet token keys")
        pki_dir = settings.path("pki")
        if pki.create_ca(pki_dir):
            changes.append("created the cluster CA")
        if pki.issue_server_cert(pki_dir, tls_hosts(settings)):
            changes.append("issued the controller TLS certificate")
        changes += bootstrap(ctl, password)
        with ctl.db.session() as session:
            registered = live(session)
        if settings.overlay == "wireguard" and ensure_key(settings.state_dir):
            changes.append("created the controller's WireGuard key")
    finally:
        ctl.db.dispose()
    changes += write_credentials(settings, password, registered)
    return changes


def _write_if_changed(path: Path, text: str) -> bool:
    """Write a file holding the admin password, 0600 whatever was there: a new file made
    exclusively (O_EXCL|O_NOFOLLOW) beside it, synced, then renamed over it (a symlink at
    path is replaced, never followed; a reader sees the old or the new text)."""
    try:
        if not path.is_symlink() and path.read_text() == text:
            if path.stat().st_mode & 0o077 == 0:
                return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    name = path.parent / f".{path.name}.{secrets.token_hex(8)}"
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    return True


def registered_clouds(settings: Settings, registered: list[str] | tuple[str, ...]) -> list[str]:
    """The registered controllers' URLs clouds.yaml may name: valid ones only
    (core/controller_urls.valid: https, a host, no user or path) of this controller's
    scheme, normalised and sorted. A row is whatever a controller wrote in the shared
    database: anything else is left out rather than given the admin password."""
    urls = {controller_urls.normal(u) for u in registered if isinstance(u, str)}
    return sorted(u for u in urls if controller_urls.valid(u)
                  and urlsplit(u).scheme == settings.scheme)


def write_credentials(settings: Settings, password: str,
                      registered: list[str] | tuple[str, ...] = ()) -> list[str]:
    """clouds.yaml and openrc for the admin user: the cloud 'atwill' (the public endpoint
    when set, else this controller) and, with several ways in, one cloud per controller
    this one knows (configured, or registered: live in the database, registered_clouds);
    a controller whose cloud name is taken by one listed before it (this one, then the
    configured, then the registered) gets none, said in the changes; openrc is 'atwill'
    (core/clouds_config.py), every value shell-quoted."""
    auth_url = f"{settings.public_endpoint or settings.public_url}/identity"
    cacert = str(settings.path("pki", "ca.pem"))
    cloud = {
        "auth": {"username": "admin", "password": password,
                 "project_name": "admin", "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "region_name": settings.region, "interface": "public", "identity_api_version": 3,
    }
    if settings.tls:
        cloud["cacert"] = cacert
    controllers = [*settings.controllers, *registered_clouds(settings, registered)]
    clouds = yaml.safe_dump({"clouds": clouds_config.clouds(
        cloud, settings.public_url, controllers, settings.public_endpoint)},
        sort_keys=False)
    values = [("OS_AUTH_URL", auth_url), ("OS_USERNAME", "admin"),
              ("OS_PASSWORD", password), ("OS_PROJECT_NAME", "admin"),
              ("OS_USER_DOMAIN_NAME", "Default"), ("OS_PROJECT_DOMAIN_NAME", "Default"),
              ("OS_IDENTITY_API_VERSION", "3"), ("OS_REGION_NAME", settings.region),
              ("OS_INTERFACE", "public")]
    if settings.tls:
        values.append(("OS_CACERT", cacert))
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values]
    changes = [f"no cloud for {url}: its name is taken by a controller listed before it"
               for url in clouds_config.skipped(settings.public_url, controllers)]
    for name, text in (("clouds.yaml", clouds), ("openrc", "\n".join(lines) + "\n")):
        if _write_if_changed(settings.path(name), text):
            changes.append(f"wrote {settings.path(name)}")
    return changes


def refresh_credentials(settings: Settings) -> tuple[list[str], list[str]]:
    """Rewrite clouds.yaml and openrc with every controller known now: the configured
    ones and those live in the shared database. Returns (changes, the registered URLs);
    a database that cannot be read raises (SQLAlchemyError): nothing is written then."""
    if not settings.path(PASSWORD_FILE).exists():
        raise FileNotFoundError(f"{settings.state_dir} holds no controller (no "
                                f"{PASSWORD_FILE}); run 'atwill init'")
    db = Database(settings.effective_database_url)
    try:
        with db.session() as session:
            registered = live(session)
    finally:
        db.dispose()
    return write_credentials(settings, admin_password(settings), registered), registered
