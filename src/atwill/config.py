"""Effective configuration: defaults, then the state directory's file, environment, flags."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from .core.catalog_rebase import checked_public_endpoint
from .core.ha_health import MASS_SILENCE_FLOOR, MASS_SILENCE_MIN_SHARE
from .core.ha_policy import POLICIES as HA_POLICIES

CONFIG_FILE = "atwill.yaml"
OVERLAYS = ("wireguard", "openvpn", "none")
ENV_PREFIX = "ATWILL_"


def default_state_dir() -> Path:
    return Path(os.environ.get("ATWILL_STATE_DIR", "/var/lib/atwill"))


@dataclasses.dataclass
class Settings:
    """Every tunable of the controller; each field can come from file, env or flag."""

    state_dir: Path = dataclasses.field(default_factory=default_state_dir)
    listen_host: str = "127.0.0.1"
    port: int = 8686
    public_host: str = ""
    tls: bool = True
    database_url: str = ""
    region: str = "RegionOne"
    token_ttl: int = 3600
    max_active_keys: int = 3
    image_size_limit: int = 10 * 1024**3
    max_request_body: int = 1024 * 1024
    log_level: str = "info"
    overlay: str = "wireguard"
    overlay_cidr: str = "100.72.0.0/16"
    overlay_port: int = 51820
    # This controller's own address on the overlay (one of core/overlay.controller_slots;
    # empty: the first, as a cloud's first controller). `controller add` picks a free one.
    overlay_address: str = ""
    # The host nodes dial for this controller's WireGuard (empty: public_host, else
    # listen_host); set it when public_host names several controllers (a DNS name, a
    # load balancer).
    overlay_endpoint: str = ""
    openvpn_proto: str = "udp"
    heartbeat_interval: float = 1.0
    heartbeat_misses: int = 5  # ignored (older files set it); ha_down_after decides
    # HA (core/ha_health): seconds of heartbeat silence before a node is suspect, then
    # down (a floor: a node on a lossy link gets more); how often the monitor looks; and
    # whether a down node that is fenced has its instances evacuated automatically.
    ha_suspect_after: float = 1.6
    ha_down_after: float = 2.6
    ha_poll_interval: float = 0.2
    # A late node (past ha_suspect_after) that most of its overlay peers have not heard
    # for this many seconds is down at once (core/ha_confirm); 0: heartbeats alone.
    ha_peer_confirm: float = 1.5
    ha_auto_evacuate: bool = True
    # A fleet of at least ha_mass_silence_nodes nodes (0: off, else at least 10) of which
    # ha_mass_silence_share (0.5 to 1) are unheard at once: the controller or the network
    # is at fault, no node is judged down for ha_mass_silence_max s at most (0 to 300);
    # fleet-wide, long-dead nodes not counted (core/ha_health.mass_silence, docs/ha.md).
    ha_mass_silence_nodes: int = 50
    ha_mass_silence_share: float = 0.55
    ha_mass_silence_max: float = 60.0
    # The HA policy of nodes whose aggregates name none (core/ha_policy): evacuate,
    # manual or autonomous; aggregate metadata ha_policy=... sets it per zone or group.
    ha_policy: str = "evacuate"
    # Live migration (os-migrateLive; its streams are TLS with a key of each migration's
    # own); an operator may turn it off (400 "Migration pre-check error").
    live_migration: bool = True
    # Nova's live_migration_permit_post_copy: a migration that does not converge (force
    # complete, the completion timeout) switches to post-copy instead of pausing the guest
    # or aborting; nodes then need vm.unprivileged_userfaultfd=1 (QEMU 7.2 runs unprivileged).
    live_migration_permit_post_copy: bool = False
    # Heat's max_stacks_per_tenant: stacks of one project, nested ones included.
    max_stacks_per_project: int = 100
    # Self-fencing of nodes without a BMC (core/peer_view): an agent that has not renewed
    # its lease for ha_lease seconds while it hears fewer than half of its peers kills its
    # HA VMs; the controller counts it fenced after ha_lease + ha_lease_margin of silence
    # on its own clock. 0 turns self-fencing off.
    ha_lease: float = 6.0
    ha_lease_margin: float = 2.0
    scheduler_weigher: str = "spread"
    # Volumes, snapshots and attachments waiting for a node judged down (or forced down,
    # or fenced) that has been silent this many seconds are settled in error states, or
    # rolled back (controller/volume/settle.py, docs/storage.md); 0: never.
    volume_settle_after: float = 300.0
    # An attach or detach of a server's volume that neither completes nor fails this many
    # seconds while its nodes are up is ended as a failed one (volume/attach_outcomes.py,
    # docs/storage.md); 0: never.
    volume_transition_timeout: float = 600.0
    # Seconds between two of those volume sweeps (settle and transition timeouts).
    volume_sweep_every: float = 5.0
    # Nova's resize_confirm_window (a finished resize is confirmed after this many
    # seconds; 0: never) and allow_resize_to_same_host.
    resize_confirm_window: float = 0.0
    allow_resize_to_same_host: bool = False
    # Keystone's security_compliance: lock an account after this many failed password
    # logins in a row (0: never) for lockout_duration seconds (0: until unlocked).
    lockout_failure_attempts: int = 6
    lockout_duration: int = 1800
    # Password logins per client address: login_rate a second, bursts of login_burst
    # (0 rate: unlimited); the excess gets 429 before any password hash is computed.
    # With several workers each keeps its share (cli/controller_cmd.per_worker_limits).
    login_rate: float = 10.0
    login_burst: int = 40
    # Password hashes computed at once by one controller (its workers share them out),
    # whatever the sources (each argon2 check holds ~19 MiB); past it a check waits up
    # to 5 s, then gets 429.
    password_checks: int = 4
    pci_aliases: str = ""  # e.g. "K20m=10de:1028,T4=10de:1eb8" (name=vendor:product)
    # The external network `public` (CIDR); empty: `atwill up` picks one clear of the
    # host's routes, addresses, resolvers and package mirrors; `init` uses 203.0.113.0/24.
    public_range: str = ""
    # Peer clouds (X-Scope): how long a call to a peer may take before the request gets a
    # 503 naming it, and how long what a peer vouched for a token is trusted (at most 30 s).
    peer_timeout: float = 5.0
    peer_token_cache: float = 30.0
    # Controller worker processes serving the API over the same socket (0: one per core).
    workers: int = 0
    # Every controller of this cloud (on one PostgreSQL), comma-separated URLs: agents
    # learn them from their desired state and fail over between them (agent/client.py).
    # This controller's own public URL is always among them.
    controller_urls: str = ""
    # The URL clients reach the cloud by when it is not this controller's own: a load
    # balancer's or a DNS name's (https://cloud.example:8686; scheme, host and port). The
    # public endpoints of the catalog, the links and clouds.yaml's `atwill` name it;
    # empty: each controller answers with its own URL (core/catalog_rebase.py).
    public_endpoint: str = ""

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def public_url(self) -> str:
        host = self.public_host or self.listen_host
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def controllers(self) -> list[str]:
        """Every controller's URL, this one's first when no list names it."""
        listed = [u.strip().rstrip("/") for u in self.controller_urls.split(",") if u.strip()]
        return listed if self.public_url in listed else [self.public_url, *listed]

    @property
    def effective_workers(self) -> int:
        return self.workers or len(os.sched_getaffinity(0)) or 1

    @property
    def overlay_ip(self) -> str:
        """This controller's address on the overlay."""
        from .core.overlay import controller_address

        return self.overlay_address.strip() or controller_address(self.overlay_cidr)

    @property
    def overlay_url(self) -> str | None:
        """The API as nodes reach it through the overlay (None without an overlay)."""
        if self.overlay == "none":
            return None
        return f"{self.scheme}://{self.overlay_ip}:{self.port}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir / 'atwill.db'}"

    def path(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["state_dir"] = str(self.state_dir)
        out["public_url"] = self.public_url
        out["database_url"] = redact_url(self.effective_database_url)
        return out


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it is shown or logged."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def _coerce(field: dataclasses.Field, raw: Any) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        value = str(raw).strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{field.name}: expected a boolean, got {raw!r}")
    if kind == "float":
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{field.name}: expected a number, got {raw!r}") from None
    if kind == "int":
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{field.name}: expected an integer, got {raw!r}") from None
    if kind == "Path":
        return Path(raw)
    return str(raw)


def load(state_dir: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings; later sources win, None overrides are ignored."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    env_dir = os.environ.get(ENV_PREFIX + "STATE_DIR")
    base = Path(state_dir or overrides.get("state_dir") or env_dir or default_state_dir())
    values["state_dir"] = base
    config_file = base / CONFIG_FILE
    if config_file.exists():
        data = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{config_file}: expected a mapping")
        for key, raw in data.items():
            if key not in fields or key == "state_dir":
                raise ValueError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(fields[key], raw)
    for name, field in fields.items():
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None and name != "state_dir":
            values[name] = _coerce(field, raw)
    for name, raw in overrides.items():
        if raw is not None and name != "state_dir":
            if name not in fields:
                raise ValueError(f"unknown setting {name!r}")
            values[name] = _coerce(fields[name], raw)
    settings = Settings(**values)
    if settings.ha_policy not in HA_POLICIES:
        raise ValueError(f"ha_policy: expected one of {', '.join(HA_POLICIES)}, "
                         f"got {settings.ha_policy!r}")
    _check_mass_silence(settings)
    if settings.overlay not in OVERLAYS:
        raise ValueError(f"overlay: expected one of {', '.join(OVERLAYS)}, "
                         f"got {settings.overlay!r}")
    if not 0 <= settings.workers <= 256:
        raise ValueError(f"workers: expected 0 (one per core) to 256, got {settings.workers}")
    settings.public_endpoint = checked_public_endpoint(settings.public_endpoint)
    if settings.openvpn_proto not in ("udp", "tcp"):
        raise ValueError(f"openvpn_proto: expected udp or tcp, got {settings.openvpn_proto!r}")
    return settings


def _check_mass_silence(settings: Settings) -> None:
    """The HA mass-silence guard's settings (core/ha_health.MassSilence): a few long-dead
    nodes or a small outage must never disable HA for the whole fleet."""
    nodes, share = settings.ha_mass_silence_nodes, settings.ha_mass_silence_share
    if nodes != 0 and nodes < MASS_SILENCE_FLOOR:
        raise ValueError(f"ha_mass_silence_nodes: expected 0 (off) or at least "
                         f"{MASS_SILENCE_FLOOR}, got {nodes}")
    if not MASS_SILENCE_MIN_SHARE <= share <= 1:
        raise ValueError(f"ha_mass_silence_share: expected a share in "
                         f"[{MASS_SILENCE_MIN_SHARE}, 1], got {share}")
    if not 0 <= settings.ha_mass_silence_max <= 300:
        raise ValueError("ha_mass_silence_max: expected 0 to 300 seconds, got "
                         f"{settings.ha_mass_silence_max}")


def save(settings: Settings, keys: list[str]) -> None:
    """Persist chosen settings to the state directory's file (used by init)."""
    path = settings.path(CONFIG_FILE)
    data: dict[str, Any] = {}
    if path.exists():
        data = yaml.safe_load(path.read_text()) or {}
    for key in keys:
        data[key] = getattr(settings, key)
    path.write_text(yaml.safe_dump(data, sort_keys=True))
