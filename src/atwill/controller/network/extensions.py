"""/v2.0/extensions: only what this service really implements, by alias."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ...core.errors import NotFound
from ...core.policy import Credentials
from ..service import caller
from . import access
from .common import fault, listing

router = APIRouter()
UPDATED = "2024-01-01T00:00:00-00:00"
EXTENSIONS = {
    "agent": ("agent", "The agent management extension."),
    "allowed-address-pairs": ("Allowed Address Pairs", "Extra addresses a port may use."),
    "binding": ("Port Binding", "Expose port bindings of a virtual port to external "
                "application."),
    "external-net": ("Neutron external network", "Adds external network attribute to "
                     "network resource."),
    "default-subnetpools": ("Default Subnetpools", "Provides ability to mark and use a "
                            "subnetpool as the default."),
    "extraroute": ("Neutron Extra Route", "Extra routes configuration for L3 router."),
    "ext-gw-mode": ("Neutron L3 Configurable external gateway mode",
                    "Extension of the router abstraction for specifying whether SNAT "
                    "should occur on the external gateway."),
    "network-mtu": ("Network MTU", "Provides MTU attribute for a network resource."),
    "port-security": ("Port Security", "Provides port security."),
    "project-id": ("project_id field enabled", "Extension that indicates that project_id "
                   "field is enabled."),
    "provider": ("Provider Network", "Expose mapping of virtual networks to physical "
                 "networks."),
    "quotas": ("Quota management support", "Expose functions for quotas management per "
               "project."),
    "quota_details": ("Quota details management support", "Expose functions for quotas "
                      "usage statistics per project."),
    "router": ("Neutron L3 Router", "Router abstraction for basic L3 forwarding between L2 "
               "Neutron networks and access to external networks via a NAT gateway."),
    "security-group": ("security-group", "The security groups extension."),
    "subnet_allocation": ("Subnet Allocation", "Enables allocation of subnets from a "
                          "subnet pool."),
    "subnet-external-network": ("Subnet External Network", "Informs if the subnet is "
                                "associated to an external network."),
    "standard-attr-description": ("standard-attr-description", "Extension to add "
                                  "descriptions to standard attributes."),
    "standard-attr-revisions": ("Resource revision numbers", "This extension will display "
                                "the revision number of neutron resources."),
    "standard-attr-tag": ("Tag support for resources with standard attribute",
                          "Enables to set tag on resources with standard attribute."),
    "standard-attr-timestamp": ("Resource timestamps", "Adds created_at and updated_at "
                                "fields to all Neutron resources that have Neutron "
                                "standard attributes."),
}


def _shape(alias: str) -> dict:
    name, description = EXTENSIONS[alias]
    return {"alias": alias, "name": name, "description": description, "links": [],
            "updated": UPDATED}


@router.get("/v2.0/extensions")
def extensions_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_extension", None)
    items = [{**_shape(a), "id": a} for a in sorted(EXTENSIONS)]
    out = listing(request, "extensions", items)
    for item in out["extensions"]:
        item.pop("id", None)
    return out


@router.get("/v2.0/extensions/{alias}")
def extension_get(alias: str, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_extension", None)
    if alias not in EXTENSIONS:
        raise fault(NotFound, "ExtensionNotFound", f"Extension with alias {alias} does not "
                    "exist.")
    return {"extension": _shape(alias)}
