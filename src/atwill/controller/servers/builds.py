"""Creating servers: validate the request, check quotas, record, schedule, claim."""

from __future__ import annotations

import base64
import binascii
import logging
import random
import re
import time
import uuid
from typing import Any

from sqlalchemy import String, bindparam, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload, lazyload
from sqlalchemy.orm.util import identity_key

from ...core import imagefit, scheduler
from ...core.errors import BadRequest, Forbidden, NotFound
from ...core.policy import Credentials
from ..compute import server_volumes_boot
from ..compute.usage import project_limits
from ..context import Controller
from ..db.models import (
    Flavor,
    Image,
    Instance,
    Keypair,
    Node,
    ServerGroup,
    ServerGroupMember,
)
from ..image import common as image_common
from ..peers.images import scoped_image
from ..volume import placement as volume_placement
from . import actions, lifecycle, locks, new_instance, resize_usage, zones

log = logging.getLogger("atwill.servers")
NO_LISTS = (lazyload(Image.tags), lazyload(Image.members))
HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")
# A boot from volume rolled back for lock contention is tried again (create()): at most
# this many tries in all, each after a pause drawn from BUILD_BACKOFF (seconds) times the
# try's number. Every try may spend placement.CLAIM_WAIT (0.25 s) on held nodes.
BUILD_ATTEMPTS = 4
BUILD_BACKOFF = (0.01, 0.05)
# PostgreSQL's deadlock_detected and serialization_failure: the transaction's victim.
RETRIED_STATES = ("40P01", "40001")


def image_properties(session: Session, inst: Instance,
                     read: dict[str, Any] | None = None) -> dict[str, str]:
    """The server's image's properties (none for a peer's image or none at all): as the
    caller read them with the server (read: server id -> the column), else the image as
    this session loaded it, else its properties column alone (a whole Image loads its
    tags and members too: 8 % of a create's second step, create_steps.py)."""
    if not inst.image_id:
        return {}
    known = session.identity_map.get(identity_key(Image, inst.image_id))
    if read is not None and inst.id in read:
        properties = read[inst.id]
    elif isinstance(known, Image):
        properties = known.properties
    else:
        properties = session.scalar(select(Image.properties).where(Image.id == inst.image_id))
    return {k: str(v) for k, v in (properties or {}).items()}


def pci_requests(ctl: Controller, inst: Instance) -> tuple[scheduler.PciRequest, ...]:
    spec = (inst.flavor.get("extra_specs") or {}).get("pci_passthrough:alias")
    if not spec:
        return ()
    try:
        return scheduler.parse_pci_alias(
            spec, scheduler.parse_alias_config(ctl.settings.pci_aliases))
    except ValueError as err:
        raise BadRequest(f"Flavor {inst.flavor.get('name')}: {err}.") from None


def find_flavor(session: Session, ref: str, creds: Credentials) -> Flavor:
    ref = ref.rstrip("/").rsplit("/", 1)[-1]
    # Its access list is read only for a private flavor (not with every create); its
    # extra specs in the same statement (flavorid is unique).
    flavor = session.scalars(select(Flavor).where(Flavor.flavorid == ref).options(
        lazyload(Flavor.projects), joinedload(Flavor.extra_specs))).unique().first()
    if flavor is None:
        raise BadRequest(f"Flavor {ref} could not be found.")
    if not flavor.is_public and not creds.is_admin and creds.project_id not in {
            a.project_id for a in flavor.projects}:
        raise BadRequest(f"Flavor {ref} could not be found.")
    return flavor


def find_image(session: Session, ref: str, creds: Credentials) -> Image:
    """The image to boot, if the caller may see it by the image service's own rule.

    Nova asks Glance for the image with the caller's token, so booting follows
    GET /v2/images/{id}: a shared image is bootable by any member, whatever the
    member's status, and by nobody once the membership or the sharing is gone.
    """
    ref = ref.rstrip("/").rsplit("/", 1)[-1]
    if (peer_image := scoped_image(session, ref)) is not None:
        return peer_image  # X-Scope {"image": peer}: the peer's image, checked there
    # image_common.find_image's lookup, without the image's tags and members (two
    # queries a create; a create reads neither).
    query = select(Image).where(Image.id == ref).options(*NO_LISTS)
    rule = image_common.visible(creds)
    image = session.scalar(query if rule is None else query.where(rule))
    if image is None:
        raise BadRequest(f"Image {ref} could not be found.")
    if image.status != "active":
        raise BadRequest(f"Image {ref} is not active.")
    return image


# A project's live servers, their vCPUs and RAM: built once (a subquery made per create
# cost 2.4 % of the controller's time in bench creates, setting up its columns).
_USED = select(func.count(), func.coalesce(func.sum(Instance.vcpus), 0),
               func.coalesce(func.sum(Instance.memory_mb), 0)).where(
    Instance.project_id == bindparam("project_id", type_=String),
    Instance.deleted.is_(False))


def check_quota(session: Session, project_id: str, count: int, flavor: Flavor) -> None:
    """403 naming the exact quota and usage when count more servers would not fit."""
    limits = project_limits(session, project_id)
    used = session.execute(_USED, {"project_id": project_id}).one()
    pending = resize_usage.pending_growth(session, project_id)
    asked = {"instances": (count, used[0]),
             "cores": (count * flavor.vcpus, used[1] + pending["cores"]),
             "ram": (count * flavor.ram, used[2] + pending["ram"])}
    for resource, (wanted, in_use) in asked.items():
        limit = limits[resource]
        if limit != -1 and in_use + wanted > limit:
            raise Forbidden(f"Quota exceeded for {resource}: Requested {wanted}, but already "
                            f"used {in_use} of {limit} {resource}.")


def hostname_of(name: str) -> str:
    host = HOSTNAME_BAD.sub("-", name.lower()).strip("-")[:63]
    return host or "server"


def decode_user_data(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid input: user_data is not valid base64.") from None


def join_group(session: Session, group_id: str, inst: Instance, creds: Credentials,
               count: int) -> None:
    group = session.get(ServerGroup, group_id)
    if group is None or (group.project_id != creds.project_id and not creds.is_admin):
        raise BadRequest(f"Invalid server group {group_id}: not found.")
    members = session.scalar(select(func.count(ServerGroupMember.id)).where(
        ServerGroupMember.group_id == group_id)) or 0
    limit = project_limits(session, group.project_id)["server_group_members"]
    if limit != -1 and members + count > limit:
        raise Forbidden(f"Quota exceeded for server_group_members: Requested {count}, but "
                        f"already used {members} of {limit} server_group_members.")
    session.add(ServerGroupMember(group_id=group_id, instance_id=inst.id))


def keypair_of(session: Session, name: str | None, user_id: str) -> Keypair | None:
    if name is None:
        return None
    keypair = session.scalar(select(Keypair).where(Keypair.user_id == user_id,
                                                   Keypair.name == name))
    if keypair is None:
        raise BadRequest(f"Invalid key_name provided: {name}.")
    return keypair


def create(session: Session, ctl: Controller, creds: Credentials, spec: dict[str, Any],
           request_id: str) -> list[Instance]:
    """Record, quota-check, and schedule min..max servers in one transaction.

    A boot from volume on PostgreSQL builds in a savepoint, tried again (up to
    BUILD_ATTEMPTS, after a short random pause) when it was rolled back for lock
    contention: its volumes found every storage node with room held by other claims for
    placement.CLAIM_WAIT, or the database ended it as a deadlock's victim. The rollback
    leaves nothing of the try (no server row, no volume, no claim on a node). The last try
    answers as before: a volume no node could be had for is in error (no valid backend)
    and its server in ERROR. A lack of room is never retried: it answers at once."""
    locks.lock_project(session, creds.project_id or "")
    if not spec.get("block_devices") or session.get_bind().dialect.name != "postgresql":
        return _create(session, ctl, creds, spec, request_id)
    try:
        for attempt in range(1, BUILD_ATTEMPTS + 1):
            try:
                with session.begin_nested():
                    if attempt < BUILD_ATTEMPTS:
                        volume_placement.raise_contended(session)
                    return _create(session, ctl, creds, spec, request_id)
            except volume_placement.Contended:
                log.info("server create %s: storage nodes held by other claims, try %d of "
                         "%d rolled back", request_id, attempt, BUILD_ATTEMPTS)
            except OperationalError as err:
                if attempt == BUILD_ATTEMPTS or getattr(err.orig, "sqlstate", None) not in \
                        RETRIED_STATES:
                    raise
                log.info("server create %s: %s, try %d of %d rolled back", request_id,
                         str(err.orig).split("\n", 1)[0][:120], attempt, BUILD_ATTEMPTS)
            volume_placement.forget(session)  # the savepoint's locks are gone with it
            time.sleep(random.uniform(*BUILD_BACKOFF) * attempt)  # noqa: S311 - not a secret
        raise AssertionError("unreachable: the last try returns or raises")
    finally:
        # A try that succeeded early leaves no Contended (a 500) to a later claim of this
        # transaction. Waits stay forbidden: its compute node rows are held until commit.
        volume_placement.stop_raising(session)


def _create(session: Session, ctl: Controller, creds: Credentials, spec: dict[str, Any],
            request_id: str) -> list[Instance]:
    """One try of create(), the project's quota lock held."""
    made = record(session, ctl, creds, spec, request_id)
    place_all(session, ctl, creds, made, spec.get("block_devices") or [])
    return made


def record(session: Session, ctl: Controller, creds: Credentials, spec: dict[str, Any],
           request_id: str, lock: bool = False) -> list[Instance]:
    """Validate, check the quotas and write the servers' rows (BUILD, scheduling, on no
    node yet). lock: take the project's quota lock here, after the checks that need no
    lock (create() takes it itself, first)."""
    from . import ports  # noqa: PLC0415 - networking joins late

    flavor = find_flavor(session, spec["flavor"], creds)
    image = find_image(session, spec["image"], creds) if spec.get("image") else None
    if image is not None:
        imagefit.check_fits(flavor.ram, flavor.disk, image.size, image.min_ram, image.min_disk,
                            image.virtual_size)
        if flavor.disk == 0 and not creds.is_admin and not any(
                v.get("boot_index") == 0 for v in spec.get("block_devices") or []):
            # Nova's zero_disk_flavor policy (admin only): the root disk would take the
            # image's virtual size, however large, billed as nothing.
            raise Forbidden("Only volume-backed servers are allowed for flavors with zero "
                            "disk.")
    keypair = keypair_of(session, spec.get("key_name"), creds.user_id)
    dest = spec["destination"]
    if dest.zone is not None and not dest.forced:  # a forced host skips it, as in Nova
        zones.require(session, dest.zone)
    if dest.host is not None and session.scalar(
            select(Node.id).where(Node.name == dest.host)) is None:
        raise BadRequest(f"Compute host {dest.host} could not be found.")
    networks = ports.validate(session, creds, spec["networks"])
    if lock:
        locks.lock_project(session, creds.project_id or "")
    count = spec["max_count"]
    try:
        check_quota(session, creds.project_id or "", count, flavor)
    except Forbidden:
        if spec["min_count"] == count:
            raise
        count = spec["min_count"]
        check_quota(session, creds.project_id or "", count, flavor)
    reservation = str(uuid.uuid4())
    made = []
    for index in range(count):
        name = spec["name"] if count == 1 else f"{spec['name']}-{index + 1}"
        inst = Instance(
            id=str(uuid.uuid4()), name=name, description=spec.get("description"),
            hostname=hostname_of(name), project_id=creds.project_id, user_id=creds.user_id,
            flavor=flavor_snapshot(flavor), vcpus=flavor.vcpus, memory_mb=flavor.ram,
            disk_gb=server_volumes_boot.local_disk(flavor.disk, spec),
            image_id=image.id if image else None,
            key_name=keypair.name if keypair else None,
            key_data=keypair.public_key if keypair else None,
            user_data=decode_user_data(spec.get("user_data")), meta=spec.get("metadata") or {},
            config_drive=bool(spec.get("config_drive")),
            availability_zone=dest.zone, requested_host=dest.host, force_host=dest.forced,
            requested_networks=networks,
            security_groups=spec.get("security_groups") or ["default"],
            scheduler_hints=spec.get("hints") or {}, vm_state="building",
            task_state="scheduling", launch_index=index, reservation_id=reservation,
            tags=list(spec.get("tags") or []))
        new_instance.insert(session, inst)  # the row and its create event, no flush
        if (spec.get("hints") or {}).get("group"):
            join_group(session, spec["hints"]["group"], inst, creds, 1)
        actions.start(session, inst.id, "create", request_id, creds.user_id, creds.project_id)
        made.append(inst)
    server_volumes_boot.check_count(spec.get("block_devices") or [], count)
    return made


def place_all(session: Session, ctl: Controller, creds: Credentials, made: list[Instance],
              mappings: list[dict[str, Any]],
              properties: dict[str, Any] | None = None) -> None:
    """Schedule and claim each server recorded, then its ports and volumes (properties:
    image_properties' `read`)."""
    from . import ports  # noqa: PLC0415 - networking joins late

    if mappings:
        # lock_order.py's order: the storage nodes' locks (all the servers' volumes), then
        # the compute node rows the claims below update; from here on a storage node's
        # lock is only tried (a wait with a compute row held could close a cycle).
        server_volumes_boot.lock_ahead(session, creds, mappings, len(made))
        volume_placement.forbid_waits(session)
    for inst in made:
        req = lifecycle.request_for(session, inst,
                                    image_properties(session, inst, properties),
                                    pci_requests(ctl, inst))
        if lifecycle.schedule(session, ctl, inst, req, new=True):
            ports.allocate(session, ctl, inst, creds)
        server_volumes_boot.attach_all(session, creds, inst, mappings)
    return made


def flavor_snapshot(flavor: Flavor) -> dict[str, Any]:
    return {"id": flavor.flavorid, "name": flavor.name, "ram": flavor.ram,
            "vcpus": flavor.vcpus, "disk": flavor.disk, "ephemeral": flavor.ephemeral,
            "swap": flavor.swap, "extra_specs": flavor.specs}


def get(session: Session, server_id: str, creds: Credentials,
        include_deleted: bool = False) -> Instance:
    inst = session.get(Instance, server_id)
    if inst is None or (inst.deleted and not include_deleted) or (
            not creds.reads_all and inst.project_id != creds.project_id):
        raise NotFound(f"Instance {server_id} could not be found.")
    return inst

