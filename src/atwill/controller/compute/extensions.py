"""/extensions: Nova v2.1 still lists its v2-era extensions (`openstack extension list
--compute`); these are the ones whose API atwill serves, in Nova's names."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from ...core.errors import NotFound
from ...core.policy import Credentials
from ..service import authorize, caller

router = APIRouter()
# Nova gives every v2.1 extension this namespace and date (they are compatibility entries).
NAMESPACE = "http://docs.openstack.org/compute/ext/fake_xml"
UPDATED = "2014-12-03T00:00:00Z"
EXTENSIONS = [
    ("Aggregates", "os-aggregates", "Admin-only aggregate administration."),
    ("AvailabilityZone", "os-availability-zone", "1. Add availability_zone to the Create "
     "Server API.\n2. Add availability zones describing."),
    ("ConsoleOutput", "os-console-output", "Console log output support."),
    ("DiskConfig", "OS-DCF", "Disk Management Extension."),
    ("Evacuate", "os-evacuate", "Enables server evacuation."),
    ("ExtendedStatus", "OS-EXT-STS", "Extended Status support."),
    ("ExtraSpecs", "os-flavor-extra-specs", "Flavors extra specs support."),
    ("FlavorAccess", "os-flavor-access", "Flavor access support."),
    ("FlavorManage", "os-flavor-manage", "Flavor create/delete API support."),
    ("Hosts", "os-hosts", "Admin-only host administration."),
    ("Hypervisors", "os-hypervisors", "Admin-only hypervisor administration."),
    ("InstanceActions", "os-instance-actions", "View a log of actions and events taken "
     "on an instance."),
    ("Keypairs", "os-keypairs", "Keypair Support."),
    ("Migrations", "os-migrations", "Provide data on migrations."),
    ("Quotas", "os-quota-sets", "Quotas management support."),
    ("SecurityGroups", "os-security-groups", "Security group support."),
    ("ServerGroups", "os-server-groups", "Server group support."),
    ("Services", "os-services", "Services support."),
    ("SimpleTenantUsage", "os-simple-tenant-usage", "Simple tenant usage extension."),
    ("VolumeAttachments", "os-volume-attachment-update", "Support for updating a volume "
     "attachment."),
]


@router.get("/v2.1/extensions")
def extensions_get(creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:extensions:list")
    return {"extensions": [_shown(*ext) for ext in EXTENSIONS]}


@router.get("/v2.1/extensions/{alias}")
def extension_get(alias: str, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "compute:extensions:list")
    for ext in EXTENSIONS:
        if ext[1] == alias:
            return {"extension": _shown(*ext)}
    raise NotFound(f"Extension {alias} could not be found.")


def _shown(name: str, alias: str, description: str) -> dict[str, Any]:
    return {"name": name, "alias": alias, "description": description,
            "namespace": NAMESPACE, "updated": UPDATED, "links": []}
