"""One policy table: every API operation mapped to the rule that allows it.

Rules:
  admin   - a cloud admin: the admin role on a token scoped to the admin project
            (Keystone's admin_required with is_admin_project).
  member  - admin, or the member role on the target's project.
  reader  - admin, or any of reader/member on the target's project.
  owner   - admin, or the caller is the target user (own keypairs, own password).
  any     - any scoped token.
An unscoped token may only do what Keystone lets it do: list its own projects and
domains, read its own user, change its own password (and get, check or revoke its
own tokens, which need no rule). An admin of any other project is an admin of that
project only: its admin role implies member and reader there.
Project isolation is enforced again in the queries; the rule only says who may ask.

System scope (Keystone's "scope": {"system": {"all": true}}): the admin role on the
system makes a cloud admin, like the admin role on the admin project; a system reader
(or member) may perform every read operation on any project's resources and nothing
else. A system-scoped token has no project, so creating what a project owns needs a
project-scoped token.
"""

from __future__ import annotations

import dataclasses

from .errors import Forbidden

RULES: dict[str, str] = {
    # identity
    "identity:get_auth_catalog": "any",
    "identity:get_auth_projects": "any",
    "identity:get_auth_domains": "any",
    "identity:list_domains": "admin", "identity:get_domain": "reader_domain",
    "identity:create_domain": "admin", "identity:update_domain": "admin",
    "identity:delete_domain": "admin",
    "identity:list_projects": "admin", "identity:get_project": "reader",
    "identity:create_project": "admin", "identity:update_project": "admin",
    "identity:delete_project": "admin",
    "identity:list_user_projects": "owner",
    "identity:list_users": "admin", "identity:get_user": "owner",
    "identity:create_user": "admin", "identity:update_user": "admin",
    "identity:delete_user": "admin", "identity:change_password": "owner",
    "identity:list_roles": "any", "identity:get_role": "any",
    "identity:create_role": "admin", "identity:update_role": "admin",
    "identity:delete_role": "admin",
    "identity:list_implied_roles": "admin", "identity:create_implied_role": "admin",
    "identity:delete_implied_role": "admin",
    "identity:list_role_assignments": "admin", "identity:create_grant": "admin",
    "identity:revoke_grant": "admin", "identity:check_grant": "admin",
    "identity:list_grants": "admin",
    "identity:get_auth_system": "any",
    "identity:list_system_grants_for_user": "admin",
    "identity:check_system_grant_for_user": "admin",
    "identity:create_system_grant_for_user": "admin",
    "identity:revoke_system_grant_for_user": "admin",
    "identity:list_regions": "any", "identity:get_region": "any",
    "identity:create_region": "admin", "identity:update_region": "admin",
    "identity:delete_region": "admin",
    "identity:list_services": "admin", "identity:get_service": "admin",
    "identity:create_service": "admin", "identity:update_service": "admin",
    "identity:delete_service": "admin",
    "identity:list_endpoints": "admin", "identity:get_endpoint": "admin",
    "identity:create_endpoint": "admin", "identity:update_endpoint": "admin",
    "identity:delete_endpoint": "admin",
    # cluster (atwill's own API)
    "cluster:tokens:list": "admin", "cluster:tokens:create": "admin",
    "cluster:tokens:delete": "admin", "cluster:usage_events:list": "admin",
    "cluster:nodes:list": "admin", "cluster:nodes:show": "admin",
    "cluster:nodes:update": "admin", "cluster:nodes:delete": "admin",
    "cluster:fence:list": "admin", "cluster:fence:show": "admin",
    "cluster:fence:update": "admin", "cluster:fence:test": "admin",
    "cluster:fence:fence": "admin", "cluster:fence:confirm": "admin",
    # compute servers
    "compute:servers:create": "member", "compute:servers:index": "reader",
    "compute:servers:detail": "reader", "compute:servers:show": "reader",
    "compute:servers:update": "member", "compute:servers:delete": "member",
    "compute:servers:action": "member", "compute:servers:create_image": "member",
    "compute:servers:evacuate": "admin", "cluster:nodes:evacuate": "admin",
    # live migration (Nova's defaults: all admin)
    "compute:servers:migrate_live": "admin", "compute:migrations:index": "admin",
    "compute:servers:migrate": "admin",
    "compute:servers:migrations:index": "admin", "compute:servers:migrations:show": "admin",
    "compute:servers:migrations:delete": "admin",
    "compute:servers:migrations:force_complete": "admin",
    "compute:servers:create:forced_host": "admin",
    "compute:servers:create:requested_destination": "admin",
    "compute:servers:unshelve_to_host": "admin", "compute:servers:shelve_offload": "admin",
    "compute:server_groups:create": "member", "compute:server_groups:index": "reader",
    "compute:server_groups:show": "reader", "compute:server_groups:delete": "member",
    # compute
    "compute:flavors:list": "any", "compute:flavors:show": "any",
    "compute:flavors:create": "admin", "compute:flavors:update": "admin",
    "compute:flavors:delete": "admin",
    "compute:flavor_access:list": "admin", "compute:flavor_access:add": "admin",
    "compute:flavor_access:remove": "admin",
    "compute:flavor_extra_specs:index": "any", "compute:flavor_extra_specs:show": "any",
    "compute:flavor_extra_specs:create": "admin", "compute:flavor_extra_specs:update": "admin",
    "compute:flavor_extra_specs:delete": "admin",
    "compute:keypairs:list": "owner", "compute:keypairs:show": "owner",
    "compute:keypairs:create": "owner", "compute:keypairs:delete": "owner",
    "compute:quotas:show": "reader", "compute:quotas:defaults": "any",
    "compute:quotas:update": "admin", "compute:quotas:delete": "admin",
    "compute:quota_classes:show": "any", "compute:quota_classes:update": "admin",
    "compute:limits": "reader", "compute:limits:other_project": "admin",
    "compute:availability_zone:list": "any", "compute:availability_zone:detail": "admin",
    "compute:extensions:list": "any",
    "compute:services:list": "admin", "compute:services:update": "admin",
    "compute:services:delete": "admin",
    "compute:hypervisors:list": "admin", "compute:hypervisors:show": "admin",
    "compute:hypervisors:statistics": "admin", "compute:hypervisors:search": "admin",
    "compute:aggregates:index": "admin", "compute:aggregates:show": "admin",
    "compute:aggregates:create": "admin", "compute:aggregates:update": "admin",
    "compute:aggregates:delete": "admin", "compute:aggregates:add_host": "admin",
    "compute:aggregates:remove_host": "admin", "compute:aggregates:set_metadata": "admin",
    "compute:simple_tenant_usage:list": "admin", "compute:simple_tenant_usage:show": "reader",
    "controller:metrics:get": "admin",
    # image
    "image:get_images": "reader", "image:get_image": "reader",
    "image:add_image": "member", "image:modify_image": "member",
    "image:delete_image": "member", "image:upload_image": "member",
    "image:download_image": "reader",
    "image:publicize_image": "admin", "image:communitize_image": "member",
    "image:add_member": "member", "image:delete_member": "member",
    "image:get_members": "reader", "image:modify_member": "reader",
    # Glance: "role:admin or (role:member and project_id:%(project_id)s)" (the owner).
    "image:deactivate": "member", "image:reactivate": "member",
    "network:get_network": "reader", "network:create_network": "member",
    "network:update_network": "member", "network:delete_network": "member",
    "network:create_network:shared": "admin", "network:create_network:external": "admin",
    "network:create_network:provider": "admin",
    "network:get_subnet": "reader", "network:create_subnet": "member",
    "network:update_subnet": "member", "network:delete_subnet": "member",
    "network:get_port": "reader", "network:create_port": "member",
    "network:update_port": "member", "network:delete_port": "member",
    "network:create_port:binding": "admin", "network:create_port:device_owner": "admin",
    "network:get_router": "reader", "network:create_router": "member",
    "network:update_router": "member", "network:delete_router": "member",
    "network:add_router_interface": "member", "network:remove_router_interface": "member",
    "network:get_floatingip": "reader", "network:create_floatingip": "member",
    "network:update_floatingip": "member", "network:delete_floatingip": "member",
    "network:get_security_group": "reader", "network:create_security_group": "member",
    "network:update_security_group": "member", "network:delete_security_group": "member",
    "network:delete_default_security_group": "admin",
    "network:get_security_group_rule": "reader",
    "network:create_security_group_rule": "member",
    "network:delete_security_group_rule": "member",
    "network:get_quota": "reader", "network:update_quota": "admin",
    "network:delete_quota": "admin", "network:list_quotas": "admin",
    "network:get_agent": "admin", "network:get_extension": "any",
}

# The project the cloud is bootstrapped with (controller/bootstrap.py): its admins are
# the cloud's admins, as Keystone's admin_project_name/admin_project_domain_name.
ADMIN_PROJECT_NAME = "admin"
ADMIN_PROJECT_DOMAIN_ID = "default"

UNSCOPED_OPERATIONS = frozenset({
    "identity:get_auth_projects", "identity:get_auth_domains", "identity:get_auth_catalog",
    "identity:get_auth_system",
    "identity:list_user_projects", "identity:get_user", "identity:change_password",
})

READER_ROLES = frozenset({"reader", "member", "admin"})
MEMBER_ROLES = frozenset({"member", "admin"})

# An operation is a read when its verb (first word of its last part) is one of these.
READ_VERBS = frozenset({"list", "get", "show", "index", "detail", "statistics", "search",
                        "check", "defaults", "download"})
READS_WITHOUT_VERB = frozenset({"compute:limits", "compute:limits:other_project"})
# Reads a system reader is still refused: join tokens are credentials, not inventory;
# fence devices name BMCs and their users.
SECRET_READS = frozenset({"cluster:tokens:list", "cluster:fence:list", "cluster:fence:show"})
# Operations whose new resource belongs to the caller's project: with no target
# project a system-scoped token is refused them (Nova and Neutron scope_types project).
PROJECT_OPERATIONS = frozenset({"compute:servers:create", "compute:server_groups:create"})


def is_read(operation: str) -> bool:
    """Whether operation only reads (what a system reader may do everywhere)."""
    verb = operation.rsplit(":", 1)[-1].split("_", 1)[0]
    if operation in READS_WITHOUT_VERB:
        return True
    return verb in READ_VERBS and operation not in SECRET_READS


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Who is asking: the token's user, its scope and its effective role names.

    is_admin_project says the token is scoped to the admin project; it is computed
    when the token is validated (never from anything the caller sends). system says
    the token is system-scoped, and roles are then the user's roles on the system.
    """

    user_id: str
    roles: frozenset[str] = frozenset()
    project_id: str | None = None
    domain_id: str | None = None
    is_admin_project: bool = False
    system: bool = False

    @property
    def is_admin(self) -> bool:
        """A cloud admin: admin on the system or on the admin project, not admin anywhere."""
        if "admin" not in self.roles:
            return False
        return self.system or (self.is_admin_project and self.project_id is not None)

    @property
    def system_reader(self) -> bool:
        """A system-scoped token with a reader role: reads every project, changes nothing."""
        return self.system and bool(self.roles & READER_ROLES)

    @property
    def reads_all(self) -> bool:
        """Whether reads may cross projects: a cloud admin or a system reader."""
        return self.is_admin or self.system_reader

    @property
    def unscoped(self) -> bool:
        return self.project_id is None and self.domain_id is None and not self.system


def allowed(creds: Credentials, operation: str, project_id: str | None = None,
            user_id: str | None = None, domain_id: str | None = None) -> bool:
    """Whether creds may perform operation on a target owned by project_id/user_id."""
    rule = RULES[operation]
    if creds.system and operation in PROJECT_OPERATIONS and project_id is None:
        return False
    if creds.is_admin:
        return True
    if creds.unscoped and operation not in UNSCOPED_OPERATIONS:
        return False
    if creds.system:
        return _system_allowed(creds, operation, rule, user_id)
    if rule == "any":
        return True
    if rule == "admin":
        return False
    if rule == "owner":
        return user_id is None or user_id == creds.user_id
    if rule == "reader_domain":
        return domain_id is not None and domain_id == creds.domain_id and bool(creds.roles)
    needed = MEMBER_ROLES if rule == "member" else READER_ROLES
    if not creds.roles & needed or creds.project_id is None:
        return False
    return project_id is None or project_id == creds.project_id


def _system_allowed(creds: Credentials, operation: str, rule: str,
                    user_id: str | None) -> bool:
    """A system-scoped non-admin: any read with a reader role, else only its own things."""
    if rule == "any":
        return True
    if rule == "owner" and (user_id is None or user_id == creds.user_id):
        return True
    return creds.system_reader and is_read(operation)


def enforce(creds: Credentials, operation: str, **target: str | None) -> None:
    if allowed(creds, operation, **target):
        return
    if creds.system and operation in PROJECT_OPERATIONS:
        raise Forbidden(f"Policy doesn't allow {operation} to be performed with a "
                        "system-scoped token: the new resource needs a project; use a "
                        "project-scoped token.")
    if creds.unscoped:
        raise Forbidden(f"Policy doesn't allow {operation} to be performed with an unscoped "
                        "token: it may only list its projects and get a project-scoped token.")
    raise Forbidden(f"Policy doesn't allow {operation} to be performed.")
