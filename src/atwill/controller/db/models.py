"""Every table, imported once so the metadata is complete for migrations."""

from .base import Base
from .compute import Flavor, FlavorAccess, FlavorExtraSpec, Keypair, Node, Quota, QuotaClass
from .identity import (
    Domain, Endpoint, ImpliedRole, Project, Region, Revocation, Role, RoleAssignment, Service,
    User,
)
from .image import Image, ImageMember, ImageTag

__all__ = [
    "Base", "Domain", "Endpoint", "Flavor", "FlavorAccess", "FlavorExtraSpec", "Image",
    "ImageMember", "ImageTag", "ImpliedRole", "Keypair", "Node", "Project", "Quota",
    "QuotaClass", "Region", "Revocation", "Role", "RoleAssignment", "Service", "User",
]
