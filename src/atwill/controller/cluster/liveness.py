"""The lean heartbeat path: a beat that changes nothing but liveness costs no transaction.

A heartbeat carries two things: liveness (the node is alive now; its host figures, peer
silences and overlay status, written over on every beat) and state (inventory, instance
and volume reports, its endpoint) that moves rows and revisions when it changes. The full
path (agents._heartbeat) runs a transaction of a dozen statements for both, on every beat.

Here a worker remembers, for each node whose last beat it processed in full, a digest of
that beat's state part, the node's revision then, and that the node was up, healthy, not
fenced and under no restart notice. A later beat with the same certificate, the same
endpoint, no inventory, the same state digest, while the node's revision has not moved,
is *lean*: it is answered from memory and its liveness part is kept in a buffer. Every
FLUSH seconds one transaction writes the buffer for all its nodes (a batched UPDATE:
last_heartbeat, heartbeat_gap_peak, host_status, overlay_status, running_vms) and reads
back each node's row and revision, so what another worker or controller changed
(a removal, a renewed certificate, down, fenced, a restart notice, a new revision) sends
that node's next beat down the full path. What may move without a revision (an admin's
status reset of a volume or snapshot, a task set on a server) is checked by the flush
every CHECK seconds per node, for all the nodes due in one statement (waiting_among): a
node something now waits on sends its next beat the full way. A full pass is also forced
every REFRESH seconds per node (a belt); a node new to the worker gets its first check
and refresh up to SPREAD of their period earlier, at random, so that after a restart the
fleet's are spread instead of one wave each period. FLUSH is 0.1 s, not 0.2: at 2,000
beats/s on a loaded 2-core machine a flush took ~0.14 s for ~200 beats (twice the rows
at 0.2 s).
The check was a full pass every 30 s until 2026-12-07: at 2,000 nodes 67 full passes a
second (each a dozen statements: certificate, instance report, evacuation query), the
largest share of a worker's heartbeat CPU that was not lean beats.

A lean beat must be one whose full pass would change nothing: its report is the one
last processed, *and* nothing the controller expects of the node moved since. So a bump
of the node's revision (revision_signal's notify: at once for a commit in this worker,
within its follow loop's FOLLOW_EVERY plus one query for another worker's) marks the
node stale until its next full pass, and a full pass that a bump raced is stale from
the start: a volume force-deleted while its node already reports it absent is removed
by that node's next beat, not a flush later (before, `known.current` moved only at a
flush, so the beats in between were lean and the report never processed; a node whose
report then never changed kept the volume 'deleting'). And a node with anything waiting
on its report (waiting(): a volume or snapshot in a transitional state, a server with a
task, a live migration in flight) is never lean, whatever bumped or not (an admin's
status reset moves no revision).

Bounded staleness: the HA monitor grants every silence STALENESS for the workers'
buffers (ha/monitor, ha/lease), so a node is never judged down because its beat sat in a
buffer. A beat buffered just after a flush took its buffer waits for that flush to end,
then FLUSH, then the next flush: FLUSH + two flushes' durations. So no beat is answered
lean while a flush has been running longer than SLOW = (STALENESS - FLUSH) / 2 = 0.15 s,
nor after one that took longer (until one keeps within SLOW again), nor while the last
successful flush ended more than FLUSH + SLOW ago (the loop is late or the database
fails): with flushes of at most SLOW each, a lean beat is in the database within SLOW +
FLUSH + SLOW = STALENESS of its arrival. What no guard can bound is a flush that was
quick when a beat was buffered and then overran: the beats it left in the buffer (at
most its first SLOW's worth) are written right after it, not a FLUSH later, late by as
much as it overran; every beat meanwhile is held (below; or, when the flush fails, goes
the full way, whose own transaction the same slow database delays as much).
Held beats: while the flush is behind, a beat that would be lean is not answered before
its write. It used to go the full way, a dozen statements in a thread pool: under load
that spiralled, since the full passes took the GIL from the flush thread, whose flushes
(measured at 2,000 nodes: ~80 ms of wall time for ~8 ms of CPU) ran later still, and all
beats went full (bench fleet, 2,000 nodes, 2026-12-07: behind was the reason for ~90 %
of the beats not taken lean; the 30 s refresh for a handful). Now the lane
(heartbeat_lane, lean(hold=True)) buffers it with a future and answers once a flush
wrote it (or a full pass of the node wrote a newer beat); a beat not written (the node
changed, removed) or not within the lane's HOLD_WAIT goes on to the full route, its hold
undone first (release: its beat leaves the buffer, the node's known order goes back to
the one before it, never below the newest order confirmed in the database; else the
route answered it 409 stale against itself, and a suspect node's returning beat was
refused: review of bde462e). A held beat the running flush took is in flight: the lane
waits for that flush's answer (while it neither fails nor hangs), else a beat the flush
wrote just after HOLD_WAIT was answered 409 by the route (review of 70980c0). A held
beat's write is as late as the flush makes it, as a full pass's would be under that
load: only its CPU differs. While the last flush failed, a flush has run longer than
HOLD_WAIT (hung) or the flush thread died (started again by the next beat), beats go the
full way (the route answers the error); so do the beats of a node WAITERS of whose beats
are held already.
A flush's UPDATE holds every condition in its WHERE
(WRITE): never backwards, never a node no longer up and healthy, fenced, forced down or
under a restart notice, never under another certificate serial; so the check and the
write are one statement on both engines (SQLite's read is outside the write lock). On
PostgreSQL it locks the rows it reads with SKIP LOCKED under a short lock_timeout: a row
another transaction holds is not waited for (its beat is kept for the next flush, its
next beat goes full). A batch the database refuses is written row by row and only the
refused beat is dropped. Every node not written sends its next beat the full way; a
removed one is forgotten.
Ordered beats (core/beat_order): a worker remembers the newest order of each node it
took (a full pass's, a lean beat's, and what a flush read back from the row, where
another controller may have stored a newer one); a beat not newer than that is answered
409 stale by the route, never as applied (agents._stale_in_memory). A buffered ordered
beat is written by its own UPDATE whose WHERE holds the order too (WRITE_ORDERED): a
newer beat stored meanwhile by another controller's full pass is never written over.
A lean beat answered 200 may still be found stale by its flush (a newer one went to
another controller in between): it changed nothing, and its 200 renews the agent's
lease from its send time only, earlier than the newer beat's (agent/lease.py: safe).
Measured (2026-12-07, in process, 1,000 buffered beats a flush, median of 20): ordered
beats flush in 1.04x the time of unordered ones on PostgreSQL (76.2 vs 73.6 ms) and
1.05x on SQLite (41.2 vs 39.3 ms). The full path's extra conditional UPDATE per ordered
beat is not measured.
A flush on PostgreSQL (2026-12-08): one UPDATE reading the beats from one JSONB object by
row id (was an executemany, a statement a beat), its reads of one shape (= ANY(:ids), was an
IN list of changing length) on the Core connection. `atwill bench fleet --nodes 2000
--compare tree` (heartbeats only, one worker, the old tree first, load ~2.3): 430 -> 1,305
beats/s (3.03x), controller CPU 2.32 -> 0.74 ms a beat (0.32x), PostgreSQL 0.33 -> 0.11 ms;
both still near a full core (the goal, 0.25 ms, missed). In process, 2,000 nodes: a flush's
CPU 116-130 -> 42-72 us a beat.
ATWILL_HEARTBEAT_PATH=full turns the lean path off (what `atwill bench fleet` compares
against).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    literal_column,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from ...core import beat_order, ha_health, restart_notice
from .. import revision_signal
from ..db.live_migrations import Migration
from ..db.models import ClusterRevision, Instance, Node, NodeRevision
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot

log = logging.getLogger("atwill.cluster")

FLUSH = 0.1  # seconds between batched writes of the buffered beats
STALENESS = 0.4  # what a silence read from the database may lack (FLUSH + two flushes)
SLOW = (STALENESS - FLUSH) / 2  # a flush longer than this stops lean answers (0.15 s)
CHECK = 30.0  # seconds after which a flush checks again whether anything waits on a node
REFRESH = 300.0  # seconds after which a node's beat goes the full way again
SPREAD = 0.5  # a node new to this worker: its first check and refresh come up to this
# share of their period earlier
SWITCH = "ATWILL_HEARTBEAT_PATH"
# Seconds a held beat waits for its flush (the lane's HOLD_WAIT); then the full route takes
# it. At most half the agent's BEAT_ANSWER (agent/client.py: 0.8 s), so the route still
# answers before the agent gives the beat up. A flush running longer than this (hung), or
# a flush thread that died, counts as failing: beats go the full way, none is held.
HOLD_WAIT = 0.4
WAITERS = 4  # held replies per node at most; another beat of the node goes the full way


def enabled() -> bool:
    return os.environ.get(SWITCH, "lean") != "full"


def staleness() -> float:
    """What the HA monitor grants every silence for the beats other workers buffer."""
    return STALENESS if enabled() else 0.0


def digest(instances: dict[str, Any] | None, volumes: dict[str, Any] | None) -> bytes:
    """The state part of a beat: its instance reports without their counters (they move
    on every beat and go to the metrics relay, not to a row) and its volume reports. An
    idle node's (none of either: one of four) is made once (8 us a beat, in process)."""
    if not instances and not volumes:
        key = (instances is None, volumes is None)
        found = _IDLE.get(key)
        if found is None:
            found = _IDLE[key] = _digest(instances, volumes)
        return found
    return _digest(instances, volumes)


_IDLE: dict[tuple[bool, bool], bytes] = {}


def _digest(instances: dict[str, Any] | None, volumes: dict[str, Any] | None) -> bytes:
    plain = None if instances is None else {
        ident: ({k: v for k, v in entry.items() if k not in ("metrics", "console")}
                if isinstance(entry, dict) else entry) for ident, entry in instances.items()}
    raw = json.dumps([plain, volumes], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode(), digest_size=16).digest()


@dataclass
class Known:
    """What a full pass (or a flush since) established about a node, in this worker."""

    cert: bytes
    serial: str
    endpoint: str
    digest: bytes
    revision: int  # the node's revision when its state part was last processed in full
    current: int  # its revision as last read
    healthy: bool  # up, health up, not fenced, not forced down, no restart notice
    full_at: float
    waiting: bool = False  # something on the node waits for its report (waiting())
    stale: bool = False  # its revision moved since the full pass (a bump notified)
    order: beat_order.Order | None = None  # the newest beat order taken or read back
    checked_at: float = -math.inf  # the last full pass, or flush that read waiting()
    # The newest order known to be in the database: read back by a flush or written by a
    # full pass (release() never restores the known order below it).
    confirmed: beat_order.Order | None = None


@dataclass
class Seen:
    """A full pass's outcome, read inside its transaction."""

    serial: str
    endpoint: str
    healthy: bool
    revision: int
    digest: bytes
    waiting: bool = False
    order: beat_order.Order | None = None  # the full pass's beat order


@dataclass
class Beat:
    at: dt.datetime
    cert: bytes
    overlay: dict[str, Any]
    host: dict[str, Any]
    running_vms: int
    serial: str | None = None  # the certificate serial it came with (None: the known one)
    order: beat_order.Order | None = None  # its X-Atwill-Heartbeat-Order (None: unordered)
    # The held beats' replies waiting for this beat's flush (a newer beat of the node
    # takes over those of the one it replaced in the buffer).
    waiters: list[Future[bool]] = field(default_factory=list)


@dataclass
class Held:
    """A lean beat taken while the flush was behind: its reply waits for `future` (True:
    written, or a full pass of the node wrote one since; False: not, it goes full)."""

    revision: int
    future: Future[bool]
    reply: dict[str, Any] | None = None
    # What release() needs to undo the hold when the beat goes on to the route.
    owner: Liveness | None = None
    node_id: str = ""
    beat: Beat | None = None  # the beat buffered for it
    previous: beat_order.Order | None = None  # the node's known order before this beat
    # (None with beat.order None: nothing to restore)
    known: Known | None = None  # the Known it set the order of (previous is of that one)


def _live(waiters: list[Future[bool]]) -> list[Future[bool]]:
    """The waiters still waiting (a cancelled or resolved one is dropped: 1.6 KB each)."""
    return [future for future in waiters if not future.done()]


def _top(*orders: beat_order.Order | None) -> beat_order.Order | None:
    found = [o for o in orders if o is not None]
    return max(found) if found else None


def _resolve(waiters: list[Future[bool]], written: bool) -> None:
    for future in waiters:
        with contextlib.suppress(InvalidStateError):  # its beat gave up waiting
            future.set_result(written)


# Volume states no report moves: any other one waits for the storage node (report.py).
SETTLED_VOLUMES = ("available", "in-use", "error", "error_extending", "error_restoring",
                   "error_deleting", "error_managing", "maintenance")
SETTLED_SNAPSHOTS = ("available", "error", "error_deleting")
# A compute node's attachments (VolumeAttachment.node_id: the compute node; Volume.node_id
# is the storage node's) that wait for its report.
MOVING_ATTACHMENTS = ("attaching", "detaching")
ENDED_MIGRATIONS = ("completed", "error", "failed", "cancelled", "confirmed", "reverted",
                    "done")


def waiting(session: Session, node_id: str) -> bool:
    """Whether something on node waits for its reports, so that the same report may move
    it (by the node's next report or by time): then none of its beats is lean. One
    statement, read by the full pass."""
    on_node = Volume.node_id == node_id
    return bool(session.scalar(select(
        exists().where(on_node, Volume.status.not_in(SETTLED_VOLUMES))
        | exists().where(VolumeAttachment.node_id == node_id,
                         VolumeAttachment.status.in_(MOVING_ATTACHMENTS))
        | exists().where(VolumeSnapshot.volume_id == Volume.id, on_node,
                         VolumeSnapshot.status.not_in(SETTLED_SNAPSHOTS))
        | exists().where(Instance.node_id == node_id, Instance.deleted.is_(False),
                         Instance.task_state.is_not(None))
        | exists().where(Migration.migration_type == "live-migration",
                         Migration.status.not_in(ENDED_MIGRATIONS),
                         or_(Migration.source_node_id == node_id,
                             Migration.dest_node_id == node_id)))))


def waiting_among(session: Session, ids: list[str]) -> set[str]:
    """The nodes among ids that something waits on (waiting()'s test for many nodes in
    one statement: a flush's check of the nodes due for one)."""
    if not ids:
        return set()
    live = (Migration.migration_type == "live-migration",
            Migration.status.not_in(ENDED_MIGRATIONS))
    among = _among(session, ids)
    return set(session.connection().scalars(union(
        select(Volume.node_id).where(among(Volume.node_id),
                                     Volume.status.not_in(SETTLED_VOLUMES)),
        select(Volume.node_id).join(VolumeSnapshot, VolumeSnapshot.volume_id == Volume.id)
        .where(among(Volume.node_id), VolumeSnapshot.status.not_in(SETTLED_SNAPSHOTS)),
        select(VolumeAttachment.node_id).where(
            among(VolumeAttachment.node_id),
            VolumeAttachment.status.in_(MOVING_ATTACHMENTS)),
        select(Instance.node_id).where(among(Instance.node_id), Instance.deleted.is_(False),
                                       Instance.task_state.is_not(None)),
        select(Migration.source_node_id).where(*live, among(Migration.source_node_id)),
        select(Migration.dest_node_id).where(*live, among(Migration.dest_node_id)))))


def _among(session: Session, ids: list[str]) -> Callable[[Any], ColumnElement[bool]]:
    """`column IN ids` for a flush's statements, of one shape whatever the number of ids.
    On PostgreSQL `column = ANY(:ids)`, one array parameter: an IN list of another length
    is another statement (rendered again by SQLAlchemy, converted again by psycopg, parsed
    and planned again by the server, never prepared), and a flush's length changes every
    time. SQLite has no arrays: IN."""
    if session.get_bind().dialect.name != "postgresql":
        return lambda column: column.in_(ids)
    param = bindparam("ids", list(ids), type_=ARRAY(String))
    return lambda column: column == any_(param)


def healthy(node: Node) -> bool:
    return _well(node.state, node.health, node.fence_state, node.forced_down,
                 (node.host_status or {}).get(restart_notice.KEY))


def _well(state: Any, health: Any, fence_state: Any, forced_down: Any, notice: Any) -> bool:
    """Up, healthy, not fenced or forced down, under no restart notice: a lean beat's node."""
    return (state == "up" and health == ha_health.UP and not fence_state
            and not forced_down and notice is None)


class Liveness:
    """One worker's memory of its nodes and its buffer of lean beats."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._known: dict[str, Known] = {}
        self._buffer: dict[str, Beat] = {}
        self._flushing = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._moved: dict[str, int] = {}  # bumps notified per node
        self._everyone = 0  # bumps notified for every node
        self._flushed = time.monotonic()  # when a flush last succeeded (or found nothing)
        self._began: float | None = None  # when the running flush took its buffer
        self._took = 0.0  # how long the last flush ran
        self._failed = False  # the last flush raised (the database fails: beats go full)
        # The beats the running flush took (until it answered their held replies): a held
        # beat among them is in flight, its reply waits for that flush (release()).
        self._taking: dict[str, Beat] = {}

    # the request side ---------------------------------------------------------------
    def lean(self, node_id: str, cert: bytes | None, source: str, body: Any,
             host: dict[str, Any], order: beat_order.Order | None = None,
             hold: bool = False) -> int | Held | None:
        """The node's revision when this beat is lean (and is now buffered), else None.
        With `hold`, a lean beat that comes while the flush is behind (slow, not failing)
        is buffered too, held: its reply waits for its write (Held)."""
        if cert is None or body.inventory is not None:
            return None
        thread = self._thread
        if thread is not None and not thread.is_alive() and not self._stop.is_set():
            self._start()  # the flush thread died: a beat starts it again
        late = self._thread is not None and self.behind(time.monotonic())
        if late and (not hold or self.failing(time.monotonic())):
            return None  # the flush is behind: a lean beat's write might come too late
        with self._lock:
            known = self._known.get(node_id)
            if known is None or not known.healthy or known.cert != cert \
                    or known.stale or known.waiting or known.current != known.revision \
                    or (source and source != known.endpoint) \
                    or time.monotonic() - known.full_at > REFRESH:
                return None
        if digest(body.instances, body.volumes) != known.digest:
            return None
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with self._lock:
            old = self._buffer.get(node_id)
            waiters = _live(old.waiters) if old is not None else []
            if late and len(waiters) >= WAITERS:
                return None  # enough of the node's beats wait: this one goes full
            previous = known.order
            if order is not None:
                newest = self._newest(node_id)
                if newest is not None and order <= newest:
                    return None  # the route answers it (409 stale)
                known.order = order
            beat = Beat(now, cert, body.overlay, host, body.running_vms, known.serial, order)
            held = Held(known.current, Future(), None, self, node_id, beat, previous, known) \
                if late else None
            beat.waiters = waiters  # replaced: its held replies wait for this one's write
            if held is not None:
                beat.waiters.append(held.future)
            self._buffer[node_id] = beat
        self._start()
        return known.current if held is None else held

    def release(self, node_id: str, held: Held, force: bool = False) -> bool:
        """A held beat goes on to the route (not written, or not within HOLD_WAIT): undo
        what its hold did, so that the route does not find it stale against itself. Its
        beat leaves the buffer if still there (not replaced, not taken by a flush; the
        replies that waited on it go the full way too), and the node's known order goes
        back to what it was before it, unless a newer one came since; never below the
        newest order confirmed in the database (Known.confirmed: a full pass that wrote an
        older beat meanwhile made a new Known whose order is the held one's). The route's
        claim in the database then decides whether it is stale.
        False (nothing undone): the running flush took the beat and has not answered it
        yet (in flight): the lane waits for that answer (else a beat the flush then wrote
        was answered 409 by the route, and the known order went back below it). `force`:
        undone all the same (that flush hung)."""
        with self._lock:
            taken = self._taking.get(node_id)
            if not force and not held.future.done() and taken is not None \
                    and any(f is held.future for f in taken.waiters):
                return False
            held.future.cancel()  # it gave up waiting (pruned from the waiters)
            beat = self._buffer.get(node_id)
            dropped: list[Future[bool]] = []
            if beat is not None and beat is held.beat:
                del self._buffer[node_id]
                dropped = [f for f in _live(beat.waiters) if f is not held.future]
            elif beat is not None:
                beat.waiters = [f for f in _live(beat.waiters) if f is not held.future]
            known = self._known.get(node_id)
            if known is not None and held.beat is not None and held.beat.order is not None \
                    and known.order == held.beat.order:
                # The order before it, if the same Known; never below what the database
                # holds as far as this worker read or wrote it.
                known.order = _top(held.previous if known is held.known else None,
                                   known.confirmed)
        _resolve(dropped, False)
        return True

    def failing(self, now: float) -> bool:
        """Whether the flush fails: the last one raised, the running one began more than
        HOLD_WAIT ago (hung), or its thread died. Then no beat is held (they go full)."""
        return self._failed or self.hung(now)

    def hung(self, now: float) -> bool:
        """Whether the running flush began more than HOLD_WAIT ago, or its thread died (an
        in-flight held beat waits no longer for its answer). A failure of an earlier flush
        does not count: the running one may still write it."""
        began, thread = self._began, self._thread
        return ((began is not None and now - began > HOLD_WAIT)
                or (thread is not None and not thread.is_alive()))

    def newest(self, node_id: str, cert: bytes | None = None) -> beat_order.Order | None:
        """The newest beat order of the node this worker took or read back (None: none).
        With `cert`: only when it is the certificate this worker knows the node by (the
        caller is the node; else the route checks the certificate first)."""
        with self._lock:
            if cert is not None:
                known = self._known.get(node_id)
                if known is None or known.cert != cert:
                    return None
            return self._newest(node_id)

    def _newest(self, node_id: str) -> beat_order.Order | None:
        known, beat = self._known.get(node_id), self._buffer.get(node_id)
        # An epoch at the ceiling counts as none (core/beat_order.CEILING)
        orders = [o for o in (known and known.order, beat and beat.order)
                  if o is not None and o.epoch < beat_order.CEILING]
        return max(orders) if orders else None

    def token(self, node_id: str) -> tuple[int, int]:
        """Taken before a full pass: full() tells by it whether a bump came meanwhile."""
        with self._lock:
            return self._everyone, self._moved.get(node_id, 0)

    def full(self, node_id: str, cert: bytes | None, seen: Seen,
             token: tuple[int, int] | None = None) -> None:
        """A full pass committed: what the next beats are compared with."""
        if cert is None or not enabled():
            return
        with self._lock:
            newest = self._newest(node_id)
            buffered = self._buffer.get(node_id)
            if buffered is None or buffered.order is None or seen.order is None \
                    or buffered.order <= seen.order:
                self._buffer.pop(node_id, None)  # older than what the full pass wrote
            else:
                buffered = None
            order = max(o for o in (newest, seen.order) if o is not None) \
                if newest is not None or seen.order is not None else None
            raced = token != (self._everyone, self._moved.get(node_id, 0))
            now = time.monotonic()
            early = 0.0
            if node_id not in self._known:
                # After a (re)start every node's first beat is full within a second: their
                # refreshes would come back as one wave each REFRESH (2,000 full passes at
                # once saturate a worker, late beats go full too). Spread them instead: a
                # node's first refresh (and check) comes earlier by a random share, never
                # later.
                early = random.uniform(0.0, SPREAD)
            before = self._known.get(node_id)
            self._known[node_id] = Known(cert, seen.serial, seen.endpoint, seen.digest,
                                         seen.revision, seen.revision, seen.healthy,
                                         now - early * REFRESH, seen.waiting, raced, order,
                                         now - early * CHECK,
                                         _top(before and before.confirmed, seen.order))
        if buffered is not None:  # a held beat's liveness: the full pass wrote a newer one
            _resolve(buffered.waiters, True)

    def moved(self, nodes: set[str] | None) -> None:
        """These nodes' revisions moved (None: every node's): their next beats go full."""
        with self._lock:
            if nodes is None:
                self._everyone += 1
                for known in self._known.values():
                    known.stale = True
                return
            for node_id in nodes:
                self._moved[node_id] = self._moved.get(node_id, 0) + 1
                if (known := self._known.get(node_id)) is not None:
                    known.stale = True

    def forget(self, node_id: str) -> None:
        with self._lock:
            self._known.pop(node_id, None)
            beat = self._buffer.pop(node_id, None)
            self._moved.pop(node_id, None)
        if beat is not None:
            _resolve(beat.waiters, False)

    def _put_back(self, node_id: str, beat: Beat) -> None:
        """A beat not written yet, kept for the next flush unless a newer one replaced it
        (which then answers its held replies too). Under the lock."""
        newer = self._buffer.setdefault(node_id, beat)
        if newer is not beat:
            newer.waiters[:0] = _live(beat.waiters)  # at most 2 * WAITERS
        else:
            beat.waiters = _live(beat.waiters)

    def behind(self, now: float) -> bool:
        """Whether a beat buffered now might wait longer than STALENESS for its write: a
        flush has run over SLOW, or the last one did, or none succeeded for FLUSH + SLOW."""
        began = self._began
        return (self._took > SLOW or (began is not None and now - began > SLOW)
                or now - self._flushed > FLUSH + SLOW)

    # the flush ----------------------------------------------------------------------
    def _start(self) -> None:
        """Starts the flush thread, or a new one when it died (not when stopped)."""
        thread = self._thread
        if thread is None or (not thread.is_alive() and not self._stop.is_set()):
            with self._lock:
                if self._thread is thread:
                    self._flushed = time.monotonic()
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="heartbeat-flush")
                    self._thread.start()

    def _run(self) -> None:
        pause = FLUSH
        while not self._stop.wait(pause):
            try:
                self.flush()
            except Exception:  # kept: the next flush writes them (or newer beats)
                log.exception("could not write the buffered heartbeats; retrying")
                pause = FLUSH
                continue
            # After a slow flush, what it left in the buffer is already late: at once.
            pause = 0.0 if self._took > SLOW and self._buffer else FLUSH

    def stop(self) -> None:
        self._stop.set()

    def flush(self) -> int:
        """Write the buffered beats; the nodes written. A node whose beat is not written
        (its row locked, changed, or refused) sends its next beat the full way."""
        with self._flushing:
            with self._lock:
                began = self._began = time.monotonic()
                beats, self._buffer = self._buffer, {}
                self._taking = beats
                serials = {node_id: known.serial for node_id in beats
                           if (known := self._known.get(node_id)) is not None}
            try:
                written = self._write(beats, serials) if beats else 0
            except Exception:
                self._failed = True
                with self._lock:  # put back what no newer beat replaced meanwhile
                    for node_id, beat in beats.items():
                        self._put_back(node_id, beat)
                raise
            else:
                self._flushed, self._failed = time.monotonic(), False
            finally:
                self._took, self._began = time.monotonic() - began, None
                with self._lock:
                    self._taking = {}
            return written

    def _write(self, beats: dict[str, Beat], serials: dict[str, str]) -> int:
        ids = sorted(beats)
        now = time.monotonic()
        with self._lock:  # the nodes whose check is due (CHECK): read in the same transaction
            due = {node_id: known for node_id in ids
                   if (known := self._known.get(node_id)) is not None
                   and now - known.checked_at > CHECK}
        try:
            back, skipped, absent = self._transaction(ids, beats, serials, due)
        except OperationalError:
            raise  # the database (or a lock) is unavailable: all kept for the next flush
        except Exception:
            # One bad beat fails the batch: row by row, dropping (and sending the full way)
            # only the node whose beat the database refuses.
            log.exception("a buffered heartbeat was refused; writing them one by one")
            back, skipped, absent = ReadBack(), set(), set()
            for node_id in ids:
                try:
                    part, more, gone = self._transaction([node_id], beats, serials, due)
                except OperationalError:
                    raise
                except Exception:
                    log.warning("heartbeat of node %s refused; its next beat goes the full "
                                "way", node_id)
                    continue
                back.merge(part)
                skipped |= more
                absent |= gone
        with self._lock:
            for node_id in skipped:  # locked by another transaction: kept for the next flush
                self._put_back(node_id, beats[node_id])
            for node_id in absent:  # removed: nothing of it kept (its next beat hears it)
                self._known.pop(node_id, None)
                self._moved.pop(node_id, None)
            for node_id in ids:
                if (known := self._known.get(node_id)) is not None:
                    back.tell(node_id, known, due.get(node_id) is known, now)
        for node_id, beat in beats.items():  # the held replies: written, or to go full
            if beat.waiters and node_id not in skipped:
                _resolve(beat.waiters, node_id in back.written)
        return len(back.written)

    def _transaction(self, ids: list[str], beats: dict[str, Beat], serials: dict[str, str],
                     due: dict[str, Known]) -> tuple[ReadBack, set[str], set[str]]:
        """One flush's transaction over ids: written, then read back."""
        with self.db.session() as session:
            rows, skipped, absent = self._rows(session, ids, beats, serials)
            if rows:
                _write_rows(session, rows)
            back = _read_back(session, ids, beats)
            back.checked = {node_id for node_id in ids if node_id in due}
            back.waits = waiting_among(session, sorted(back.checked))
        return back, skipped, absent

    def _rows(self, session: Session, ids: list[str], beats: dict[str, Beat],
              serials: dict[str, str]) -> tuple[list[dict], set[str], set[str]]:
        """The UPDATE's parameter rows, and the nodes whose rows another transaction holds
        (PostgreSQL: skipped, never waited for)."""
        # Core, not the ORM: its execution and row loading cost as much again, for
        # nothing a flush uses (here, in _read_back and waiting_among).
        connection = session.connection()
        query = select(*SEEN).where(_among(session, ids)(Node.id)).order_by(Node.id)
        locking = connection.dialect.name == "postgresql"
        if locking:
            connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'"))
            query = query.with_for_update(skip_locked=True)
        found = {row.id: row for row in connection.execute(query)}
        skipped: set[str] = set()
        absent = {node_id for node_id in ids if node_id not in found}
        if locking and absent:
            skipped = set(connection.scalars(select(Node.id).where(
                _among(session, sorted(absent))(Node.id))))
            absent -= skipped
        limits = ha_health.Thresholds()
        rows = []
        for node_id in ids:
            row, beat = found.get(node_id), beats[node_id]
            serial = beat.serial if beat.serial is not None else serials.get(node_id)
            if row is None:
                continue  # removed (its next beat hears it), or locked (skipped)
            if serial is None or not _healthy(row) or row.last_heartbeat is None \
                    or row.last_heartbeat >= beat.at or not beat_order.applies(
                        beat_order.stored(row.beat_epoch, row.beat_seq), beat.order):
                continue  # not written; its next beat goes the full way
            gap = (beat.at - row.last_heartbeat).total_seconds()
            rows.append({
                "b_id": node_id, "b_at": beat.at, "b_was": row.last_heartbeat,
                "b_serial": serial,
                "b_peak": ha_health.next_peak(row.heartbeat_gap_peak or 0.0, gap, limits),
                # no notice on the row (the UPDATE's WHERE): the report, as after_heartbeat
                "b_host": restart_notice.after_heartbeat(None, beat.host, beat.at),
                "b_overlay": beat.overlay, "b_vms": beat.running_vms,
                **({} if beat.order is None else {"b_epoch": beat.order.epoch,
                                                  "b_seq": beat.order.seq})})
        return rows, skipped, absent

@dataclass
class ReadBack:
    """What a flush's transaction read back after its write."""

    written: set[str] = field(default_factory=set)  # the row holds the beat's time
    everyone: int = 0  # the clock of the last change for every node
    own: dict[str, int] = field(default_factory=dict)  # each node's own revision
    orders: dict[str, beat_order.Order] = field(default_factory=dict)  # held per row
    checked: set[str] = field(default_factory=set)  # the nodes whose check was due
    waits: set[str] = field(default_factory=set)  # ... and something waits on (waiting())

    def merge(self, other: ReadBack) -> None:
        self.written |= other.written
        self.everyone = max(self.everyone, other.everyone)
        self.own.update(other.own)
        self.orders.update(other.orders)
        self.checked |= other.checked
        self.waits |= other.waits

    def tell(self, node_id: str, known: Known, checked: bool, at: float) -> None:
        """Into what the worker knows of a node (under its lock)."""
        # Not written (removed, changed, down, fenced, noticed, another certificate, a
        # newer beat, locked): its next beat goes the full way.
        known.healthy = known.healthy and node_id in self.written
        known.current = max(self.everyone, self.own.get(node_id, 0))
        # Another controller may have stored a newer beat: later ones are told.
        held = self.orders.get(node_id)
        if held is not None and (known.order is None or held > known.order):
            known.order = held
        if held is not None:
            known.confirmed = _top(known.confirmed, held)
        if checked and node_id in self.checked:  # `known` is still the one checked
            known.checked_at = at
            known.waiting = known.waiting or node_id in self.waits


def _read_back(session: Session, ids: list[str], beats: dict[str, Beat]) -> ReadBack:
    """In the flush's transaction, one statement: the nodes written (their row holds the
    beat's time), each node's own revision and the one for everyone, and the beat order
    each row holds."""
    back = ReadBack()
    everyone = select(ClusterRevision.everyone_at).where(ClusterRevision.id == 1) \
        .scalar_subquery()
    for node_id, at, epoch, seq, own, all_at in session.connection().execute(
            select(Node.id, Node.last_heartbeat, Node.beat_epoch, Node.beat_seq,
                   NodeRevision.revision, everyone)
            .outerjoin(NodeRevision, NodeRevision.node_id == Node.id)
            .where(_among(session, ids)(Node.id))):
        if at == beats[node_id].at:
            back.written.add(node_id)
        if (held := beat_order.stored(epoch, seq)) is not None:
            back.orders[node_id] = held
        if own is not None:
            back.own[node_id] = own
        back.everyone = max(back.everyone, all_at or 0)
    return back


# What a flush reads of each node: whether it may be written, and what the write needs.
SEEN = (Node.id, Node.cert_serial, Node.state, Node.health, Node.fence_state,
        Node.forced_down, Node.last_heartbeat, Node.heartbeat_gap_peak,
        Node.host_status[restart_notice.KEY].label("notice"), Node.beat_epoch, Node.beat_seq)


LOCK_TIMEOUT_MS = 100  # PostgreSQL: what a flush waits for any lock (rows are skipped)

# The batched write: every condition a flush may write under is in its WHERE, so the check
# and the write are one statement on both engines (SQLite's read before it is outside the
# write lock): up, health up, not fenced, not forced down, no restart notice, the beat's
# certificate, and the row as read (never backwards; its gap peak computed from it).
# An ordered beat (core/beat_order): the same, only over an older stored order (or none),
# which it stores: a newer beat another controller stored since the read is kept (a
# stored epoch at the ceiling counts as none: core/beat_order.CEILING).
_T = Node.__table__
# Each beat's values, by name: bind parameters b_<name> (SQLite: one execution per beat) or
# looked up by the row's id in one JSONB object of all of them (PostgreSQL: one statement).
NAMES = ("at", "was", "serial", "peak", "host", "overlay", "vms")
ORDER = ("epoch", "seq")


def _update(b: Any, ordered: bool, ids: Any = None) -> Update:
    """The flush's UPDATE with each beat's values taken from b (b["at"]: its time), of the
    row b["id"] or (ids) of the rows among ids."""
    where = [
        _T.c.id == b["id"] if ids is None else _T.c.id == any_(ids),
        _T.c.state == "up", _T.c.health == ha_health.UP,
        or_(_T.c.fence_state.is_(None), _T.c.fence_state == ""), _T.c.forced_down.is_(False),
        Node.host_status[restart_notice.KEY].as_string().is_(None),  # absent (or null)
        _T.c.cert_serial == b["serial"],
        _T.c.last_heartbeat == b["was"], _T.c.last_heartbeat < b["at"]]
    values = {"last_heartbeat": b["at"], "heartbeat_gap_peak": b["peak"],
              "host_status": b["host"], "overlay_status": b["overlay"],
              "running_vms": b["vms"]}
    if ordered:
        where.append(or_(
            _T.c.beat_epoch.is_(None), _T.c.beat_seq.is_(None),
            _T.c.beat_epoch >= beat_order.CEILING,
            _T.c.beat_epoch < b["epoch"],
            and_(_T.c.beat_epoch == b["epoch"], _T.c.beat_seq < b["seq"])))
        values |= {"beat_epoch": b["epoch"], "beat_seq": b["seq"]}
    return update(_T).where(*where).values(**values)


# PostgreSQL: the rows among b_ids (an index scan), each reading its beat from b_beats by
# its id (a JSONB object, parsed once as the parameter is bound: a binary search a value).
# Not a join with a set-returning function (json_to_recordset): estimated at 100 rows
# against nodes' 1 (its conditions), the planner chose a nested loop over all the nodes
# that read every beat for each (1,000 beats, 2,000 nodes: 1.7 s instead of 0.1 s).
_KINDS = {"at": DateTime, "was": DateTime, "serial": String, "peak": Float, "host": JSON,
          "overlay": JSON, "vms": Integer, "epoch": BigInteger, "seq": BigInteger}
_BEAT = bindparam("b_beats", type_=JSONB).op("->", return_type=JSONB)(_T.c.id)
_LOOKED_UP = {name: cast(_BEAT.op("->>", return_type=Text)(literal_column(f"'{name}'")),
                         kind) for name, kind in _KINDS.items()}
_IDS = bindparam("b_ids", type_=ARRAY(String))
_BINDS = {name: bindparam(f"b_{name}") for name in ("id", *NAMES, *ORDER)}
WRITE, WRITE_ORDERED = _update(_BINDS, False), _update(_BINDS, True)
WRITE_ALL, WRITE_ALL_ORDERED = _update(_LOOKED_UP, False, _IDS), _update(_LOOKED_UP, True, _IDS)


def _write_rows(session: Session, rows: list[dict]) -> None:
    """The batched UPDATEs on the session's connection: Core statements (the ORM's bulk
    UPDATE path around it cost as much again per row, for nothing it uses); ordered and
    unordered beats apart (an older agent's beats carry no order). On PostgreSQL each is
    one statement over one JSONB object of the beats (an executemany ran one statement
    per beat, SQLAlchemy's and psycopg's work per row two fifths of a flush's CPU;
    arrays, one per column, cost as much in psycopg's list dumping)."""
    connection = session.connection()
    together = connection.dialect.name == "postgresql"
    for ordered in (False, True):
        batch = [row for row in rows if ("b_epoch" in row) == ordered]
        if not batch:
            continue
        if together and all(math.isfinite(row["b_peak"]) for row in batch):  # JSON's
            connection.execute(WRITE_ALL_ORDERED if ordered else WRITE_ALL,
                               {"b_ids": [row["b_id"] for row in batch],
                                "b_beats": _beats(batch, ordered)})
        else:
            connection.execute(WRITE_ORDERED if ordered else WRITE, batch)


def _beats(batch: list[dict], ordered: bool) -> dict[str, dict[str, Any]]:
    """The beats by node id as WRITE_ALL reads them: text it casts. Times in ISO format
    (microseconds kept); the host and overlay reports as the JSON text the column stores
    (JSONB would reorder their keys)."""
    return {row["b_id"]: {
        "at": row["b_at"].isoformat(), "was": row["b_was"].isoformat(),
        "serial": row["b_serial"], "peak": row["b_peak"], "host": json.dumps(row["b_host"]),
        "overlay": json.dumps(row["b_overlay"]), "vms": row["b_vms"],
        **({"epoch": row["b_epoch"], "seq": row["b_seq"]} if ordered else {})}
        for row in batch}


def _healthy(row: Any) -> bool:
    return _well(row.state, row.health, row.fence_state, row.forced_down, row.notice)


_workers: weakref.WeakKeyDictionary[Any, Liveness] = weakref.WeakKeyDictionary()
_made = threading.Lock()


def _notified(nodes: set[str] | None) -> None:
    """revision_signal's listener: a bump committed here, or another worker's resolved."""
    with _made:
        workers = list(_workers.values())
    for worker in workers:
        worker.moved(nodes)


revision_signal.changed.listeners.append(_notified)


def of(db: Any) -> Liveness:
    """This process's Liveness for a database (one per controller)."""
    with _made:
        found = _workers.get(db)
        if found is None:
            found = _workers[db] = Liveness(db)
        return found

