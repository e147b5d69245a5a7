"""Every table, imported once so the metadata is complete for migrations."""

from .base import Base
from .cluster import (
    ClusterRevision,
    JoinToken,
    NodeRevision,
    OverlayAddress,
    RevokedCertificate,
)
from .compute import (
    Aggregate,
    AggregateHost,
    AggregateMetadata,
    Evacuation,
    Flavor,
    FlavorAccess,
    FlavorExtraSpec,
    Keypair,
    Node,
    Quota,
    QuotaClass,
)
from .controllers import ControllerRecord
from .dashboard import DashboardSession
from .drains import NodeDrain
from .fencing import FenceDevice, FenceEvent
from .identity import (
    Domain,
    Endpoint,
    ImpliedRole,
    Project,
    Region,
    Revocation,
    Role,
    RoleAssignment,
    Service,
    User,
)
from .image import Image, ImageMember, ImageTag
from .live_migrations import Migration
from .network import (
    DefaultSecurityGroup,
    FloatingIP,
    IPAllocation,
    Network,
    NetworkQuota,
    Port,
    PortSecurityGroup,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    SubnetPool,
)
from .orchestration import Stack, StackEvent, StackResource
from .peers import Peer, PeerImage, PeerMapping, PeerToken
from .servers import (
    Instance,
    InstanceAction,
    InstanceActionEvent,
    PciClaim,
    ServerGroup,
    ServerGroupMember,
)
from .token_keys import TokenKey
from .usage_events import UsageEvent
from .volume import (
    Volume,
    VolumeAttachment,
    VolumeQuota,
    VolumeQuotaClass,
    VolumeSnapshot,
    VolumeType,
)

__all__ = [
    "Aggregate", "AggregateHost", "AggregateMetadata",
    "Instance", "InstanceAction", "InstanceActionEvent", "PciClaim", "ServerGroup",
    "ServerGroupMember",
    "Base", "ClusterRevision", "Domain", "Endpoint", "Evacuation", "Flavor", "FlavorAccess",
    "DashboardSession", "FenceDevice", "FenceEvent", "NodeDrain",
    "FlavorExtraSpec", "Image", "ImageMember", "ImageTag", "ImpliedRole", "JoinToken",
    "Keypair", "Node", "OverlayAddress", "Project", "Quota", "QuotaClass", "Region",
    "Revocation", "RevokedCertificate", "Role", "RoleAssignment", "Service", "User",
    "DefaultSecurityGroup", "FloatingIP", "IPAllocation", "Network", "NetworkQuota", "Port",
    "PortSecurityGroup", "Router", "SecurityGroup", "SecurityGroupRule", "Subnet",
    "SubnetPool",
    "NodeRevision",
    "Stack", "StackEvent", "StackResource",
    "Volume", "VolumeAttachment", "VolumeQuota", "VolumeQuotaClass", "VolumeSnapshot",
    "VolumeType",
    "UsageEvent",
    "Migration",
    "Peer", "PeerImage", "PeerMapping", "PeerToken",
    "ControllerRecord",
    "TokenKey",
]
