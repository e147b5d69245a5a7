"""Keystone's documents of the identity rows (views live beside the handlers, not the ORM)."""

from __future__ import annotations

from ..db.models import Domain, Endpoint, Project, Region, Role, Service, User


def domain(domain: Domain, base_url: str) -> dict:
    return {
        "id": domain.id, "name": domain.name, "description": domain.description,
        "enabled": domain.enabled, "tags": [], "options": {},
        "links": {"self": f"{base_url}/v3/domains/{domain.id}"},
    }


def project(project: Project, base_url: str) -> dict:
    return {
        "id": project.id, "name": project.name, "domain_id": project.domain_id,
        "description": project.description, "enabled": project.enabled,
        "parent_id": project.domain_id, "is_domain": False, "tags": list(project.tags or []),
        "options": {},
        "links": {"self": f"{base_url}/v3/projects/{project.id}"},
    }


def user(user: User, base_url: str) -> dict:
    out = {
        "id": user.id, "name": user.name, "domain_id": user.domain_id,
        "enabled": user.enabled, "password_expires_at": None, "options": {},
        "links": {"self": f"{base_url}/v3/users/{user.id}"},
    }
    for key in ("email", "description", "default_project_id"):
        if getattr(user, key) is not None:
            out[key] = getattr(user, key)
    return out


def role(role: Role, base_url: str) -> dict:
    return {
        "id": role.id, "name": role.name, "domain_id": None,
        "description": role.description, "options": {},
        "links": {"self": f"{base_url}/v3/roles/{role.id}"},
    }


def region(region: Region, base_url: str) -> dict:
    return {
        "id": region.id, "description": region.description,
        "parent_region_id": region.parent_region_id,
        "links": {"self": f"{base_url}/v3/regions/{region.id}"},
    }


def service(service: Service, base_url: str) -> dict:
    return {
        "id": service.id, "type": service.type, "name": service.name,
        "description": service.description, "enabled": service.enabled,
        "links": {"self": f"{base_url}/v3/services/{service.id}"},
    }


def endpoint(endpoint: Endpoint, base_url: str) -> dict:
    return {
        "id": endpoint.id, "service_id": endpoint.service_id, "interface": endpoint.interface,
        "region_id": endpoint.region_id, "region": endpoint.region_id, "url": endpoint.url,
        "enabled": endpoint.enabled,
        "links": {"self": f"{base_url}/v3/endpoints/{endpoint.id}"},
    }
