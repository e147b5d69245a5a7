"""Schemas of atwill's own cluster API (/cluster/v1), shared by controller, agent and CLI."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


AggregateNames = list[Annotated[str, Field(min_length=1, max_length=255)]]
AGGREGATES_HELP = "Host aggregates (names) the node is put into when it joins."


class JoinRequest(Strict):
    token: str = Field(min_length=8, max_length=256)
    name: str = Field(pattern=NAME_PATTERN)
    csr: str = Field(min_length=64, max_length=16384, description="PEM certificate request")
    wireguard_public_key: str | None = Field(default=None, min_length=44, max_length=44)
    overlay_port: int = Field(default=51820, ge=1, le=65535)
    inventory: dict[str, Any] = Field(default_factory=dict)
    aggregates: AggregateNames = Field(default_factory=list, max_length=32,
                                       description=AGGREGATES_HELP)


class Peer(BaseModel):
    name: str
    public_key: str | None
    overlay_ip: str
    endpoint: str | None
    keepalive: int = 25


class OverlayState(BaseModel):
    kind: str
    address: str
    prefix: int
    port: int
    cidr: str
    peers: list[Peer]
    openvpn: dict[str, Any] | None = None


class DesiredState(BaseModel):
    revision: int
    node_id: str
    name: str
    enabled: bool
    heartbeat_interval: float
    controller_overlay_url: str | None = Field(
        None, description="The controller's API through the overlay; nodes fetch images there.")
    controllers: list[str] = Field(
        default_factory=list, description="Every controller's URL (one PostgreSQL); the "
        "agent keeps them and fails over between them.")
    overlay: OverlayState
    instances: list[dict[str, Any]] = Field(
        default_factory=list, description="Full specs; `snapshot` is a pending createImage "
        "({image_id}) the node uploads to PUT /cluster/v1/nodes/{id}/snapshots/{image_id}.")
    network: dict[str, Any] | None = None
    destroy: list[str] = Field(
        default_factory=list, description="Instances whose local copy the node destroys "
        "(deleted, or evacuated away); any other instance it does not run keeps its disk.")
    storage: dict[str, Any] | None = Field(
        None, description="A storage node's volumes, snapshots and exports to keep.")
    volume_crl: str | None = Field(
        None, description="The revocation list (PEM) of removed nodes' certificates that "
        "a node with volumes checks storage nodes against before QEMU connects to an export.")
    ha: dict[str, Any] | None = Field(
        None, description="Self-fencing: {lease (s), protected (instance ids), peers "
        "([{id, address}] to probe), port}; the agent kills the protected instances when "
        "its lease runs out while it hears fewer than half of its peers (core/peer_view).")
    cold_migrations: dict[str, Any] | None = Field(
        None, description="Cold migrations and resizes: send [{migration, instance}] (PUT "
        "the stopped instance's disk to .../cold-migrations/{migration}/file) and receive "
        "[{migration, instance, disk_gb, local}] (GET it, grow it, POST .../received).")


class JoinResponse(BaseModel):
    node_id: str
    name: str
    certificate: str
    ca: str
    desired: DesiredState


class Heartbeat(Strict):
    inventory: dict[str, Any] | None = None
    overlay: dict[str, Any] = Field(default_factory=dict)
    host: dict[str, Any] = Field(default_factory=dict, description="uptime_s, loadavg, time, "
                                 "reconcile, metrics (core/host_figures)")
    instances: dict[str, dict[str, Any]] | None = Field(
        default=None, description="instance id -> {state, error, console, reboot_serial}")
    running_vms: int = Field(default=0, ge=0, le=2**31 - 1)  # a 32-bit column
    volumes: dict[str, dict[str, Any]] | None = Field(
        default=None, description="A storage node's volumes: volume id -> {state, size_gb, "
        "error, snapshots, exports} (docs: notes/volume-contract)")
    peers: dict[str, float] | None = Field(
        default=None, max_length=64, description="node id -> seconds since the node last "
        "had a sign of that peer (an answer or a probe); the keys are the peers it probes")


class HeartbeatReply(BaseModel):
    revision: int
    state: str
    # This controller orders beats by their X-Atwill-Heartbeat-Order (core/beat_order).
    ordered: bool = False


class LeaveRequest(Strict):
    force: bool = False


class NodeView(BaseModel):
    id: str
    name: str
    state: str
    enabled: bool
    disabled_reason: str | None
    overlay_ip: str | None
    endpoint: str | None
    last_heartbeat: str | None
    accelerator: str | None
    vcpus: int
    memory_mb: int
    disk_gb: int
    running_vms: int
    inventory: dict[str, Any]
    # HA (migration 0009): health from heartbeats, and whether the node is fenced.
    forced_down: bool = False
    health: str = "up"
    fence_state: str | None = None
    fence_method: str | None = None
    fence_message: str | None = None
    fenced_at: str | None = None


class TokenCreate(Strict):
    ttl: int = Field(default=3600, ge=1, le=30 * 86400, description="seconds")
    uses: int = Field(default=1, ge=1, le=10000)
    description: str = Field(default="", max_length=1024)
    aggregates: AggregateNames = Field(default_factory=list, max_length=32,
                                       description=AGGREGATES_HELP)


class TokenView(BaseModel):
    id: str
    description: str
    expires_at: str
    uses: int
    max_uses: int
    state: str
    aggregates: list[str] = Field(default_factory=list)


class TokenCreated(TokenView):
    token: str
    url: str
    ca_hash: str
    command: str


class SnapshotFailure(Strict):
    """Why a node could not snapshot an instance or upload the image."""

    message: str = Field(min_length=1, max_length=4096)


class NodeAction(Strict):
    reason: str | None = Field(default=None, max_length=255)


class CertificateRenewal(Strict):
    """A new certificate request from the node's existing key, for the same node name."""

    csr: str = Field(min_length=64, max_length=16384, description="PEM certificate request")


class ConsoleChunk(Strict):
    """The tail of an instance's console log, at most 64 KiB of UTF-8 (replaces the last)."""

    console: str


class RenewedCertificate(BaseModel):
    certificate: str
    expires_at: str


# Errors of the node-facing routes carry Keystone's envelope plus a machine-readable
# "type" where the agent must act: {"error": {"code": 403, "title": "Forbidden",
# "type": "node_removed", "message": ...}}. node_removed: the node was removed (its agent
# stops its VMs and keeps their disks); certificate_superseded: a renewal replaced the
# certificate used (the agent renews again with it).
ERROR_NODE_REMOVED = "node_removed"
ERROR_CERTIFICATE_SUPERSEDED = "certificate_superseded"
