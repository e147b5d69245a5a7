"""/cluster/v1/nodes/{id}/…: the calls an agent makes, authenticated by its certificate."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from ...api.cluster import DesiredState, Heartbeat, HeartbeatReply, LeaveRequest
from ...config import Settings
from ...core import beat_order, host_figures, instance_counters
from ...core.errors import Conflict, NotFound, ServiceUnavailable, Unauthorized
from ...core.nodereports import HEARTBEAT_BYTES, check_instance_reports, check_inventory
from ...pki import serial_of
from .. import revision as revision_module
from .. import revision_signal
from ..background import REVISION_FILE
from ..context import Controller
from ..db.models import Image, Instance, Node
from ..ha.lease import host_report
from ..ha.monitor import returned
from ..image.store import ImageStore
from ..metrics_relay import FileRelay, relay_for
from ..peercert import client_cert
from ..peers.images import node_download
from ..revision import bump, changes_since, node_revision, revision
from ..servers import live_migration_agents
from ..servers.lifecycle import report
from ..service import controller
from ..volume.desired import image_needed
from ..volume.report import check_volume_reports, storage_report
from . import desired_pace, fleet_lists, liveness, nodes
from .bodies import read_model
from .desired import desired_state
from .nodecert import calling_node

log = logging.getLogger("atwill.cluster")

router = APIRouter()
LONG_POLL = 25.0
REREAD = 1.0  # seconds between re-reads of the revision where no follower resolves bumps
SNAPSHOTS = 4096  # nodes whose last desired state this worker keeps


class Snapshots:
    """Each node's last desired state built here, with its revision: what a long-poll that
    saw no change answers (the agent ignores a body whose revision it has)."""

    def __init__(self, size: int = SNAPSHOTS) -> None:
        self._size, self._lock = size, threading.Lock()
        self._kept: OrderedDict[str, tuple[int, dict]] = OrderedDict()

    def get(self, node_id: str, rev: int) -> dict | None:
        with self._lock:
            kept = self._kept.get(node_id)
            return kept[1] if kept is not None and kept[0] == rev else None

    def put(self, node_id: str, state: dict) -> dict:
        with self._lock:
            self._kept[node_id] = (state["revision"], state)
            self._kept.move_to_end(node_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return state


_snapshots = Snapshots()
_pace = desired_pace.Pace()


def _build(session: Session, ctl: Controller, node: Node) -> dict:
    """The node's state built now, kept, and its build time counted (desired_pace)."""
    started = time.monotonic()
    state = desired_state(session, ctl, node)
    _pace.built(node.id, time.monotonic() - started)
    return _snapshots.put(node.id, state)


class MovedNodes:
    """A worker's resolver for revision_signal: the nodes whose revision moved since the
    clock it last saw (read first when made, so nothing committed after is missed)."""

    def __init__(self, ctl: Controller) -> None:
        self.db = ctl.db
        with self.db.session() as session:
            self.seen = revision(session)

    def __call__(self) -> set[str] | None:
        with self.db.session() as session:
            self.seen, nodes = changes_since(session, self.seen)
        return nodes


class Callers:
    """The certificate each node's long-polls last passed calling_node with in this
    worker: a long-poll showing it skips the database check before the gate (calling_node
    still checks it inside, so a removed node or a revoked certificate is still told)."""

    def __init__(self, size: int = SNAPSHOTS) -> None:
        self._size, self._lock = size, threading.Lock()
        self._kept: OrderedDict[str, bytes] = OrderedDict()

    def known(self, node_id: str, der: bytes) -> bool:
        with self._lock:
            return self._kept.get(node_id) == der

    def put(self, node_id: str, der: bytes) -> None:
        with self._lock:
            self._kept[node_id] = der
            self._kept.move_to_end(node_id)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)


_callers = Callers()


def _authenticate(ctl: Controller, request: Request, node_id: str, der: bytes) -> None:
    """calling_node's check (raising its 401/403), outside the gate; kept when passed."""
    with ctl.db.session() as session:
        calling_node(session, request, node_id)
    _callers.put(node_id, der)


def _stamp(ctl: Controller) -> Path:
    return ctl.settings.path(REVISION_FILE)


def _desired(ctl: Controller, request: Request, node_id: str, after: int) -> dict | None:
    if not revision_module.EVERY_CHANGE_FOR_ALL:
        revision_signal.watch(_stamp(ctl), lambda: MovedNodes(ctl))
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        # An `after` beyond the clock was never given out here (a database restored from
        # a backup, another cloud's): the agent gets the whole state at once.
        if node_revision(session, node.id) <= after <= revision(session):
            return None
        return _build(session, ctl, node)


UNCHANGED_DOC = (
    "The node's whole desired state once its revision differs from `after` (-1: at once), "
    "else, when `wait` runs out, only `{\"revision\": after, \"unchanged\": true}`: the "
    "state the agent holds is still the node's (an agent ignores a body whose revision it "
    "has; a restarted one without its state asks with after=-1).")


@router.get("/v1/nodes/{node_id}/desired", response_model=DesiredState,
            summary="Long-poll the node's desired state newer than `after`",
            description=UNCHANGED_DOC)
async def desired_get(node_id: str, request: Request,
                      after: int = Query(default=-1, ge=-1),
                      wait: float = Query(default=LONG_POLL, ge=0, le=60)) -> dict:
    deadline = time.monotonic() + wait
    # The caller is the node before it holds or takes a turn at the gate: a flood of
    # calls without the node's certificate must not hold up the nodes' long-polls.
    der = client_cert(request.scope)
    if der is None:
        raise Unauthorized("This call needs the node's client certificate (mutual TLS).")
    ctl = controller(request)
    if not _callers.known(node_id, der):
        await asyncio.to_thread(_authenticate, ctl, request, node_id, der)
    while True:
        # Soon after its last build, the changes made meanwhile wait for one build.
        pause = min(_pace.hold(node_id), deadline - time.monotonic())
        if pause > 0:
            await asyncio.sleep(pause)
        wakeup = revision_signal.changed.subscribe(node_id)
        # A turn waited for no longer than the poll's own deadline.
        async with desired_pace.turn(deadline - time.monotonic()) as turned:
            state = await asyncio.to_thread(_desired, ctl, request, node_id, after) \
                if turned else None
        if state is not None:
            revision_signal.changed.unsubscribe(wakeup)
            return state
        if not turned or time.monotonic() >= deadline or await request.is_disconnected():
            revision_signal.changed.unsubscribe(wakeup)
            state = await asyncio.to_thread(_current, ctl, request, node_id, after)
            # Not rebuilt, nor checked against DesiredState (the route's model): unchanged.
            return JSONResponse(state) if "unchanged" in state else state
        # Woken at once by a bump for this node in any worker of this controller (the
        # follower resolves the others'); without a follower, re-read now and then.
        pause = deadline - time.monotonic()
        if not revision_signal.watched(_stamp(ctl)):
            pause = min(REREAD, pause)
        await revision_signal.changed.wait(wakeup, max(0.0, pause))


def _current(ctl: Controller, request: Request, node_id: str, after: int = -1) -> dict:
    """A long-poll's answer once its wait ran out: `unchanged` when the node's revision is
    still the agent's (no build: after a controller restart every node's first timeout
    rebuilt its whole state here), else the state (kept, or built)."""
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        rev = node_revision(session, node.id)
        if rev == after and fleet_lists.SHARED and not revision_module.EVERY_CHANGE_FOR_ALL:
            return {"revision": rev, "unchanged": True}
        kept = _snapshots.get(node.id, rev)
        if kept is not None and not revision_module.EVERY_CHANGE_FOR_ALL:
            return kept
        return _build(session, ctl, node)


HEARTBEAT_DOC = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": Heartbeat.model_json_schema()}}}}


@router.post("/v1/nodes/{node_id}/heartbeat", response_model=HeartbeatReply,
             openapi_extra=HEARTBEAT_DOC,
             summary="Report liveness, inventory and overlay status (at most 256 KiB)")
async def heartbeat_post(node_id: str, request: Request) -> dict:
    body = checked(await read_model(request, Heartbeat, HEARTBEAT_BYTES, "heartbeat"))
    order = beat_order.parse(request.headers.get(beat_order.HEADER))
    ctl = controller(request)
    if liveness.enabled():  # liveness only: answered from memory, written in a batch
        host = host_report(body.host, body.peers)
        client = request.client.host if request.client else ""
        reply = lean(ctl, node_id, client_cert(request.scope), client, body, host, order)
        if reply is not None:
            return reply
        return await asyncio.to_thread(_heartbeat, ctl, request, node_id, body, host, order)
    return await asyncio.to_thread(_heartbeat, ctl, request, node_id, body, None, order)


class HeartbeatStale(Conflict):
    """409 with error type heartbeat_stale: a newer beat of the node was applied (or
    taken by this worker) already; this one changed nothing (core/beat_order). The
    order held is in the reply's X-Atwill-Heartbeat-Order header."""

    kind = beat_order.STALE

    def __init__(self, node_id: str, beat: beat_order.Order,
                 held: beat_order.Order | None, message: str | None = None) -> None:
        super().__init__(message or f"Heartbeat {beat} of node {node_id} is older than one "
                         f"applied ({held or 'unknown'}): it changed nothing.",
                         {beat_order.HEADER: str(held)} if held is not None else None)


class HeartbeatFenced(Conflict):
    """409 with error type heartbeat_fenced: the node was fenced with its power confirmed
    off and this beat is of the stored epoch's run: it changed nothing. The agent that
    gets it is running (the fence was wrong): it takes a new epoch at once, whose next
    beat returns the node (core/beat_order). The order held, if any, is in the header."""

    kind = beat_order.FENCED

    def __init__(self, node: Node, beat: beat_order.Order,
                 held: beat_order.Order | None) -> None:
        super().__init__(
            f"Node {node.name} was fenced ({node.fence_method or 'fenced'}: its power was "
            f"confirmed off) after heartbeats of epoch {held.epoch if held else '?'}; "
            f"heartbeat {beat} is of that run (sent before the fence and applied late, or "
            "the fence was wrong and the host runs): it changed nothing. Only a beat of a "
            "later epoch returns the node; an agent that gets this answer takes one.",
            {beat_order.HEADER: str(held)} if held is not None else None)


def _stale_in_memory(ctl: Controller, node_id: str, order: beat_order.Order | None,
                     cert: bytes | None = None, checked_cert: bool = False) -> None:
    """409 when this worker knows of a newer beat of the node (applied or buffered): only
    to the node itself (its certificate checked, or the one this worker knows it by), so
    another caller learns nothing of its order."""
    if order is None or not liveness.enabled() or (cert is None and not checked_cert):
        return
    newest = liveness.of(ctl.db).newest(node_id, None if checked_cert else cert)
    if newest is not None and order <= newest:
        raise HeartbeatStale(node_id, order, newest)


CLAIM_LOCK_TIMEOUT_MS = 300  # PostgreSQL: what a beat waits for the node's row lock
# PostgreSQL: a heartbeat transaction idle this long (its controller hung between two
# statements, holding the node's row lock) is ended by the server; set for that
# transaction only (SET LOCAL): others (migrations, builds) keep the server's setting.
# A beat's transaction takes milliseconds: a second idle is a hung controller, and every
# other controller's beat of the node answers RowBusy meanwhile (the HA down floor is
# 2.6 s: core/ha_health), so it is ended soon.
IDLE_TIMEOUT_MS = 1000


class RowBusy(ServiceUnavailable):
    """503 with error type heartbeat_row_busy: the node's row is locked by another
    transaction (another controller's beat of it, maybe hung) for over
    CLAIM_LOCK_TIMEOUT_MS; this beat changed nothing (rolled back). The agent sends the
    same beat on to the next controller at once (agent/client.Failover) and, if all of
    them answer so, beats again at the interval, without a backoff."""

    kind = beat_order.BUSY


def claim(session: Session, node_id: str, order: beat_order.Order,
          serial: str | None = None) -> bool:
    """Store the beat's order on the node's row if it is newer than the stored one, as
    the transaction's first write (the check and the write one statement: on PostgreSQL
    the row stays locked to the commit, so a concurrent beat re-reads it after; SQLite
    writes one at a time). False: an equal or newer beat was applied, or no such node,
    or (serial given) the row holds another certificate (no lock is taken for it), or
    the node was fenced with its power confirmed off and the beat is not of a later
    epoch than the stored one (core/beat_order: a beat sent before the fence).
    On PostgreSQL the row lock is waited for CLAIM_LOCK_TIMEOUT_MS at most (RowBusy)."""
    nodes_table = Node.__table__
    c = nodes_table.c
    stored_epoch, stored_seq = c.beat_epoch, c.beat_seq
    ceiling = stored_epoch >= beat_order.CEILING  # none held (core/beat_order)
    newer = or_(stored_epoch.is_(None), stored_seq.is_(None), ceiling,
                stored_epoch < order.epoch,
                and_(stored_epoch == order.epoch, stored_seq < order.seq))
    # no pair held (either half NULL: beat_order.stored) orders nothing, as in `newer`
    may_return = or_(c.fence_state.is_(None), c.fence_state != beat_order.FENCED_OFF,
                     c.fenced_at.is_(None), c.fence_method == beat_order.SELF_FENCED,
                     stored_epoch.is_(None), stored_seq.is_(None), ceiling,
                     stored_epoch < order.epoch)
    where = [c.id == node_id, newer, may_return]
    if serial is not None:
        where.append(c.cert_serial == serial)
    connection = session.connection()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        previous = connection.execute(text(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', :lock, true),"
            " set_config('idle_in_transaction_session_timeout', :idle, true)"),
            {"lock": f"{CLAIM_LOCK_TIMEOUT_MS}ms", "idle": f"{IDLE_TIMEOUT_MS}ms"}).scalar()
    try:
        result = connection.execute(update(nodes_table).where(*where)
                                    .values(beat_epoch=order.epoch, beat_seq=order.seq))
    except OperationalError as error:
        if _sqlstate(error) == LOCK_NOT_AVAILABLE:
            raise RowBusy(f"The row of node {node_id} is locked by another transaction "
                          f"(another controller's beat of it?) for over "
                          f"{CLAIM_LOCK_TIMEOUT_MS} ms: heartbeat {order} changed nothing; "
                          "send it to another controller.") from None
        raise  # anything else: service.py's handler (503 for a lost connection)
    if postgres:  # the rest of the beat waits for locks as before
        connection.execute(text("SELECT set_config('lock_timeout', :lock, true)"),
                           {"lock": previous})
    return result.rowcount == 1


LOCK_NOT_AVAILABLE = "55P03"
IDLE_ENDED = "25P03"  # idle_in_transaction_session_timeout


def _sqlstate(error: DBAPIError) -> str | None:
    orig = error.orig
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def checked(body: Heartbeat) -> Heartbeat:
    """The heartbeat's reports checked (400 on anything unsound); its host figures kept
    only when sound."""
    if body.inventory is not None:
        check_inventory(body.inventory)
    if body.instances is not None:
        check_instance_reports(body.instances)
        instance_counters.check_reports(body.instances)
    if body.volumes is not None:
        check_volume_reports(body.volumes)
    if host_figures.REPORT_KEY in body.host:  # kept with the node: only what is sound
        if (figures := host_figures.accepted(body.host.pop(host_figures.REPORT_KEY))):
            body.host[host_figures.REPORT_KEY] = figures
    return body


def lean(ctl: Controller, node_id: str, cert: bytes | None, client: str, body: Heartbeat,
         host: dict, order: beat_order.Order | None = None, hold: bool = False
         ) -> dict | liveness.Held | None:
    """The reply to a beat that only says the node lives (liveness.py), else None; with
    `hold`, while the flush is behind, that reply held until its write (Held.reply). A
    beat older than one this worker knows of is never answered as applied: liveness.lean
    gives it to the full path, which answers 409 once the certificate is checked."""
    source = _underlay_source(ctl.settings, client)
    rev = liveness.of(ctl.db).lean(node_id, cert, source, body, host, order, hold)
    if rev is None:
        return None
    if body.instances is not None:
        _relay(ctl).record(node_id, body.instances)
    if isinstance(rev, liveness.Held):
        rev.reply = {"revision": rev.revision, "state": "up", "ordered": True}
        return rev
    return {"revision": rev, "state": "up", "ordered": True}


# Per lean beat, nodes.underlay_source parsed the overlay's network and the address
# (~10 us, a fifth of the lane's own CPU) and relay_for built a path: both kept here.
_SOURCES: dict[tuple[str, str, str], str] = {}
SOURCES = 8192  # addresses kept at most (then all forgotten: a fleet's are few)
_RELAYS: dict[Path, FileRelay] = {}


def _underlay_source(settings: Settings, client: str) -> str:
    """nodes.underlay_source of a lean beat, kept per overlay, network and address."""
    overlay = settings.overlay  # without one, underlay_source reads no network
    key = (overlay, "" if overlay == "none" else settings.overlay_cidr, client)
    found = _SOURCES.get(key)
    if found is None:
        if len(_SOURCES) >= SOURCES:
            _SOURCES.clear()
        found = _SOURCES[key] = nodes.underlay_source(settings, client)
    return found


def _relay(ctl: Controller) -> FileRelay:
    """relay_for(ctl), kept per state directory."""
    found = _RELAYS.get(ctl.settings.state_dir)
    if found is None:
        found = _RELAYS[ctl.settings.state_dir] = relay_for(ctl)
    return found


def _heartbeat(ctl: Controller, request: Request, node_id: str, body: Heartbeat,
               host: dict | None = None, order: beat_order.Order | None = None) -> dict:
    scope = getattr(request, "scope", None)  # a unit test's stand-in has none
    der = client_cert(scope) if scope else None
    _stale_in_memory(ctl, node_id, order, der)  # only when the worker knows this cert
    source = nodes.underlay_source(ctl.settings,
                                   request.client.host if request.client else "")
    if host is None:
        host = host_report(body.host, body.peers)
    state_digest = liveness.digest(body.instances, body.volumes) if liveness.enabled() \
        else b""
    token = liveness.of(ctl.db).token(node_id)  # before anything is read (liveness.py)
    cert = der if liveness.enabled() else None
    try:
        reply, seen = _full(ctl, request, node_id, body, host, order, source, state_digest,
                            der, cert)
    except DBAPIError as error:
        if _sqlstate(error) != IDLE_ENDED:
            raise
        # This worker stalled past IDLE_TIMEOUT_MS inside the beat's transaction: the
        # server ended it (rolled back), freeing the row for the other controllers.
        # Nothing applied: the agent may send it on to the next controller (RowBusy's type).
        raise RowBusy(f"Heartbeat of node {node_id} was not written: its transaction "
                      "stalled and the database ended it; send it to another "
                      "controller.") from None
    # committed: the next beats with this state part may be lean (liveness.py)
    liveness.of(ctl.db).full(node_id, cert, seen, token)
    return reply


def _full(ctl: Controller, request: Request, node_id: str, body: Heartbeat, host: dict,
          order: beat_order.Order | None, source: str, state_digest: bytes,
          der: bytes | None, cert: bytes | None) -> tuple[dict, liveness.Seen]:
    """The full pass's transaction (committed on return): the reply and what was seen."""
    with ctl.db.session() as session:
        # The certificate is in the claim's WHERE: another caller's beat takes no lock,
        # and is told why by calling_node (401/403/410), never the node's order.
        serial = serial_of(der) if der is not None else None
        if serial is None:
            calling_node(session, request, node_id)  # no certificate: 401 before a lock
        if order is not None and not claim(session, node_id, order, serial):
            node = calling_node(session, request, node_id)  # removed, another's: as before
            held = beat_order.stored(node.beat_epoch, node.beat_seq)
            if (held is None or order > held) and beat_order.fenced_needs_new_epoch(
                    node.fence_state, node.fence_method, node.fenced_at is not None):
                raise HeartbeatFenced(node, order, held)
            raise HeartbeatStale(node_id, order, held)
        node = calling_node(session, request, node_id)
        _stale_in_memory(ctl, node_id, order, checked_cert=True)  # a buffered newer one

        returned(session, node, body.instances)
        nodes.heartbeat(session, node, body.inventory, body.overlay, body.running_vms, source,
                        host)
        if body.instances is not None:
            # Console output has its own route now; an older agent's copy is ignored here.
            reports = {uuid: {k: v for k, v in entry.items() if k != "console"}
                       for uuid, entry in body.instances.items()}
            report(session, ctl, node, reports)
            live_migration_agents.report(session, node, reports)
            relay_for(ctl).record(node.id, body.instances)  # for /metrics (metrics_relay.py)
        if body.volumes is not None:
            if storage_report(session, node, body.volumes):
                # The servers on its volumes follow from the volume rows (node_scope).
                bump(session, nodes={node.id})
        reply = {"revision": node_revision(session, node.id), "state": node.state,
                 "ordered": True}
        seen = liveness.Seen(node.cert_serial or "", node.endpoint_host or "",
                             liveness.healthy(node), reply["revision"], state_digest,
                             cert is not None and liveness.waiting(session, node.id),
                             order)
    return reply, seen


@router.post("/v1/nodes/{node_id}/leave", status_code=204,
             summary="The node removes itself (atwill leave)")
def leave_post(node_id: str, request: Request, body: LeaveRequest = Depends()) -> None:
    ctl = controller(request)
    with ctl.db.session() as session:
        nodes.remove(session, calling_node(session, request, node_id), body.force)


@router.get("/v1/nodes/{node_id}/images/{image_id}", response_class=FileResponse,
            summary="Download an image that an instance on this node boots from")
def node_image_get(node_id: str, image_id: str, request: Request) -> FileResponse:
    ctl = controller(request)
    with ctl.db.session() as session:
        node = calling_node(session, request, node_id)
        needed = session.scalar(select(Instance.id).where(
            Instance.node_id == node.id, Instance.deleted.is_(False),
            # an unshelved server boots from its shelve snapshot
            or_(Instance.image_id == image_id, Instance.shelved_image_id == image_id)).limit(1))
        if needed is None:
            needed = image_id if image_needed(session, node.id, image_id) else None
        if needed is None and live_migration_agents.receives_image(session, node, image_id):
            needed = image_id  # the destination of a live migration (its base image)
        image = session.get(Image, image_id)
        if needed is not None and image is None and (
                relayed := node_download(ctl, session, image_id)) is not None:
            return relayed  # a peer cloud's image (X-Scope), streamed from the peer
        if needed is None or image is None or image.status != "active":
            raise NotFound(f"No instance on this node boots from image {image_id}.")
        checksum = image.checksum or ""
    path = ImageStore.of(ctl).path(image_id)
    peer = request.client.host if request.client else "?"
    log.info("image %s sent to node %s at %s", image_id, node_id, peer)
    return FileResponse(path, media_type="application/octet-stream",
                        headers={"Content-MD5": checksum})
