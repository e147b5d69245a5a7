"""The HA monitor's steps: detect (heartbeat age), fence, evacuate, finish, and a return.

Each step is one short transaction; fencing runs between them, since a fence
agent may take seconds. Evacuation never starts before the node is fenced.

A node judged down moves its own revision only: whether a node is up is in no other
node's desired state, so a cascade costs O(nodes), not O(nodes^2) rebuilds; a silence
too wide to be the nodes' judges none down for a minute at most (silence_guard,
docs/ha.md). Bench fleet, 500 SIMULATED nodes on PostgreSQL, 25 s phases, the commit
before and this one run back to back (2026-12-07, 2 shared vCPUs, the controller
saturated in both): nodes marked down (each woke every node's long-poll before) 600 ->
281 on the full heartbeat path and 626 -> 24 on the lean one; a security-group rule for
50 nodes reached 0/50 -> 50/50 of them on the lean path (median 10.7 s, the API call
itself 7.4 s), waking none of the 450 others.

A pass that cannot answer from _all_heard (one node of the fleet down, suspect or
restarting is enough, and it runs every ha_poll_interval, 0.2 s) reads every node as plain
rows of the columns it judges, loads as an entity only a node whose health moves, and
reads the peers' reports only when a late node is judged by them. benchmarks/ha_detect.py
(2,000 nodes, one long down, SQLite, in process, 2026-12-07, 2 shared vCPUs, same run):
113 -> 42 ms of CPU a pass (0.37x; 57 -> 21 % of a core at 5 passes a second).

Its reads take no lock, so each verdict is written compare-and-set (_write_verdict): only
on a row still as read (heartbeat, state, health, fence, forced down). A node whose beat
commits between the read and the write keeps its beat's health, is not fenced, and is
judged again next pass; the fence step also refuses a node heard after its verdict
(beat_since_verdict). The nodes that go down are loaded in one SELECT: a pass in which
1,000 of 2,000 nodes go down (no instances, in process, before its commit, 2026-12-07,
2 shared vCPUs, the commit before and this one back to back, 3 passes each) took
1.15-1.55 -> 0.84-1.29 s on SQLite and 2.3-2.8 -> 1.5-1.95 s on PostgreSQL (~0.7x);
it still writes one UPDATE per verdict.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ...core import ha_confirm, ha_health, ha_policy, peer_view, restart_notice
from ..cluster import liveness
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Evacuation, Instance, Node
from ..revision import bump
from ..servers import actions, live_migration_agents
from . import evacuate, silence_guard
from . import lease as ha_lease
from . import policy as ha_policies

log = logging.getLogger("atwill.ha")
# The silences a hold by the peers' word (core/ha_confirm.vouched) was said of: (node id,
# its last heartbeat), so a hold is said once per silence, whatever the passes between (one
# that raised midway, another monitor's, one that did not hold it). A new silence starts
# from a new beat; the oldest are dropped past _SAID_MAX.
_SAID_HELD: dict[tuple[str, dt.datetime], None] = {}
_SAID_MAX = 4096
_SAID_LOCK = threading.Lock()


# What detect reads of every node (and silence_guard of the rows it is handed).
_JUDGED = (Node.id, Node.name, Node.state, Node.health, Node.last_heartbeat,
           Node.heartbeat_gap_peak, Node.host_status, Node.forced_down, Node.fenced_at,
           Node.fence_state)


def thresholds(ctl: Controller) -> ha_health.Thresholds:
    s = ctl.settings
    return ha_health.Thresholds(suspect_after=s.ha_suspect_after, down_after=s.ha_down_after)


def detect(session: Session, ctl: Controller, since: dt.datetime) -> list[Node]:
    """Move each node's health with its silence; the nodes that went down now.

    Silence is counted from since at the earliest: after a controller restart (or a
    stalled monitor) no node is down before it had the time to be heard. A late node
    that most of its peers no longer hear is down before its own threshold
    (core/ha_confirm). A node whose agent announced a restart is not judged until the
    notice's deadline, and its silence counts from there (core/restart_notice).
    """
    # Beats the workers still buffer (cluster/liveness.py: at most its STALENESS) are
    # granted to every silence: none is judged late because its beat was not written yet.
    now, limits, newly_down = _now() - _grace(), thresholds(ctl), []
    went_down: list[tuple[str, float, str]] = []
    if _all_heard(session, now, since, limits):
        silence_guard.clear(since)  # nobody unheard: no hold (and its end is said at once)
        live_migration_agents.settle_lost_sources(session)
        return []
    # Plain rows, not ORM objects: a pass reads every node (5 passes a second) and
    # loading 2,000 Node entities with all their JSON columns cost ~95 ms of CPU a pass
    # (benchmarks/ha_detect.py); a node whose health moves is loaded as an entity alone.
    nodes = session.execute(select(*_JUDGED).where(Node.last_heartbeat.is_not(None))
                            .order_by(Node.name)).all()
    # The peers' reports (every fresh peer's JSON read through) matter only to a late node
    # that the confirm rule judges, or one past its threshold but not its ceiling that
    # they may vouch for: read once, when the first one is (a fleet with one node long
    # down reads them never).
    read: list[dict[str, dict[str, tuple[float, float]]]] = []
    ring: list[list[str]] = []

    def reports_of(node_id: str) -> dict[str, tuple[float, float]]:
        if not read:
            read.append(_peer_reports(nodes, now))
        return read[0].get(node_id, {})

    def probes_of(node_id: str) -> list[str]:
        # The probe set the controller hands the node (ha/lease.desired_block: the ring of
        # every node with an overlay address), never the one it says it probes.
        if not ring:
            ring.append(sorted(session.scalars(select(Node.id).where(
                Node.overlay_ip.is_not(None)))))
        return peer_view.ring_probes(ring[0], node_id)

    silences = {n.id: (now - max(n.last_heartbeat, since)).total_seconds() for n in nodes}
    # A restarting node counts as unheard here: when it is the only other node, the
    # controller cannot tell its own deafness from that node's restart, and judges nobody.
    up = [n for n in nodes if n.state == "up"]
    heard = sum(1 for n in up if silences[n.id] <= limits.suspect_after)
    # So large a share of so large a fleet unheard at once is the controller's or the
    # network's silence, not the nodes': nobody is judged down for ha_mass_silence_max
    # s at most, but a node the operator forced down or confirmed off (core/ha_health).
    held = silence_guard.hold(ctl, nodes, silences, limits, now, since)
    for row in nodes:
        if _restarting(session, row, now):
            continue
        heard_at = restart_notice.heard_at(row.last_heartbeat, row.host_status) \
            if _noticed(row) else row.last_heartbeat
        silence = (now - max(heard_at, since)).total_seconds()
        mine = row.state == "up"
        if len(up) - mine > 0 and heard - (mine and silences[row.id] <= limits.suspect_after
                                           ) == 0:
            # The controller hears none of the other up nodes either (it is draining its
            # connections at shutdown, or its own link is down): deaf, it judges nobody.
            continue
        started = (row.host_status or {}).get(ha_lease.HEARD_KEY)
        if not started and silence <= ha_health.JOIN_GRACE:
            continue  # joined, but its agent was never heard: still starting
        health = _health(ctl, row, silence, limits, reports_of, probes_of)
        if held and health == ha_health.DOWN and not silence_guard.exempt(row):
            health = ha_health.SUSPECT
        if health == row.health or (health != ha_health.DOWN and row.state == "down"):
            continue  # a down node comes back by heartbeating (returned), not by a timer
        if not _write_verdict(session, row, health):
            continue  # it beat, moved or went since the read: judged again next pass
        if health == ha_health.DOWN:
            went_down.append((row.id, silence, _why(row, silence, limits)))
    if went_down:
        # One SELECT for the nodes that went down (a mass event: not one per node), as
        # written: populate_existing, since the verdicts went by Core UPDATEs.
        loaded = {n.id: n for n in session.scalars(
            select(Node).where(Node.id.in_([node_id for node_id, _, _ in went_down]))
            .execution_options(populate_existing=True))}
        for node_id, silence, why in went_down:
            node = loaded[node_id]  # its row is ours (written above) until the commit
            newly_down.append(node)
            _tell_instances(session, ctl, node, silence, why)
    if newly_down:
        # Whether a node is up or down is in no node's desired state (overlay and HA
        # peers, tunnel endpoints and exports list every node, down or not: peers keep
        # probing a down node, so a partitioned one is told from a dead one, and it is
        # reachable again at once when it returns); its own agent re-reads, and the
        # workers' lean beats of it go full (cluster/liveness). The rows a verdict moves
        # (its instances' actions) add their nodes at commit (node_scope).
        bump(session, nodes={n.id for n in newly_down})
    # A live migration whose source is known off (fenced last pass, or forced down)
    # hears nothing more from it: its destination says whether the guest arrived.
    live_migration_agents.settle_lost_sources(session)
    return newly_down


def _all_heard(session: Session, now: dt.datetime, since: dt.datetime,
               limits: ha_health.Thresholds) -> bool:
    """Every node up, healthy, under no restart notice and heard within suspect_after:
    the pass below would change nothing (no silence to judge, no peer report to read).
    The common case, asked of the database in one query that returns at most one row,
    instead of reading every row (fleet-sized) each pass."""
    if min(limits.down_after, limits.down_ceiling) < limits.suspect_after:
        return False  # a node may be down before it is late: the pass below judges
    # silence = now - max(last, since) <= suspect_after, classify() says UP
    heard_after = now - dt.timedelta(seconds=limits.suspect_after)
    unwell = [Node.state.is_(None), Node.state != "up", Node.health.is_(None),
              Node.health != ha_health.UP,
              Node.host_status[restart_notice.KEY].as_string().is_not(None)]
    if since < heard_after:
        unwell.append(Node.last_heartbeat < heard_after)
    return session.scalar(select(Node.id).where(Node.last_heartbeat.is_not(None),
                                                or_(*unwell)).limit(1)) is None


def _health(ctl: Controller, node: Any, silence: float, limits: ha_health.Thresholds,
            reports_of: Callable[[str], dict[str, tuple[float, float]]],
            probes_of: Callable[[str], list[str]]) -> str:
    """The node's health from its silence, and from its peers' word (core/ha_confirm):
    most of them no longer hear it, it is down before its threshold; most of them still
    hear it, it is not down on the controller's clock alone before the ceiling. The first
    rule wins. Both count against the probe set the controller hands the node
    (probes_of), not the one the node reports. A hold is said once per silence."""
    peak = node.heartbeat_gap_peak or 0.0
    health = ha_health.classify(silence, peak, limits)
    confirm = ctl.settings.ha_peer_confirm
    if confirm <= 0 or silence <= limits.suspect_after or health == ha_health.UP or \
            health == ha_health.DOWN and silence > limits.down_ceiling:
        return _noticed_health(node, health)  # no peer's word can change it: none read
    probed = probes_of(node.id)
    reports = reports_of(node.id)
    said = {peer: reported for peer, (reported, _) in reports.items()}
    if ha_confirm.confirmed_down(silence, limits.suspect_after, confirm, probed, said):
        return ha_health.DOWN
    aged = {peer: peer_view.age_now(reported, ago) for peer, (reported, ago) in reports.items()}
    if health == ha_health.DOWN and ha_confirm.vouched(silence, limits.down_ceiling, confirm,
                                                       probed, aged):
        if _first_said(node.id, node.last_heartbeat):
            log.warning("node %s: no heartbeat for %.1f s, past its threshold of %.1f s "
                        "(recent longest gap %.2f s), but most of its peers had a sign of it "
                        "within %.0f s (%s): its link to the controller, not the node; not "
                        "judged down before %.0f s of silence", node.name, silence,
                        ha_health.down_threshold(peak, limits), peak,
                        ha_confirm.VOUCH_WITHIN,
                        ", ".join(f"{age:.1f} s" for peer, age in sorted(aged.items())
                                  if peer in probed),
                        limits.down_ceiling)
        health = ha_health.SUSPECT
    return _noticed_health(node, health)


def _first_said(node_id: str, last_heartbeat: dt.datetime) -> bool:
    """Whether the hold of this silence was not said yet (and it is now noted said)."""
    key = (node_id, last_heartbeat)
    with _SAID_LOCK:  # monitors of several controllers may share the process (tests)
        if key in _SAID_HELD:
            return False
        _SAID_HELD[key] = None
        while len(_SAID_HELD) > _SAID_MAX:
            del _SAID_HELD[next(iter(_SAID_HELD))]
        return True


def _noticed_health(node: Any, health: str) -> str:
    if health == ha_health.UP and _noticed(node):
        # Past its deadline but not yet late: still restarting, not heard up.
        health = restart_notice.RESTARTING
    return health


def _noticed(node: Any) -> bool:
    """The node's agent announced a restart and was not heard since (the operator's
    forced down overrides a notice)."""
    return not node.forced_down and restart_notice.deadline(node.host_status) is not None


def _restarting(session: Session, node: Any, now: dt.datetime) -> bool:
    """While its notice holds, an up node is RESTARTING: not judged, whatever its
    silence or its peers say (its agent, which answers their probes, is away too)."""
    if node.state != "up" or not _noticed(node) or not restart_notice.holds(
            node.host_status, now):
        return False
    if node.health != restart_notice.RESTARTING and _write_verdict(
            session, node, restart_notice.RESTARTING):
        log.warning("node %s: %s; it is neither fenced nor evacuated meanwhile", node.name,
                    restart_notice.describe(node.host_status))
    return True


_T = Node.__table__


def _write_verdict(session: Session, row: Any, health: str) -> bool:
    """Write a verdict on a row detect read, only if the row is still as read: whether it
    was written. A node whose beat committed after the read (its last_heartbeat moved,
    cluster/agents -> returned) is not judged on its older silence, then fenced; nor is
    one whose state, health, fence or forced down moved, nor one removed. Compare-and-set
    in one statement, as the beats' own batched UPDATE (cluster/liveness.WRITE): on
    PostgreSQL a concurrent beat's UPDATE commits first or waits for this transaction."""
    values: dict[str, Any] = {"health": health, "health_changed_at": utcnow()}
    if health == ha_health.DOWN:
        values["state"] = "down"
    statement = update(_T).where(
        _T.c.id == row.id,
        _T.c.last_heartbeat.is_not_distinct_from(row.last_heartbeat),
        _T.c.state.is_not_distinct_from(row.state),
        _T.c.health.is_not_distinct_from(row.health),
        _T.c.forced_down.is_not_distinct_from(row.forced_down),
        _T.c.fence_state.is_not_distinct_from(row.fence_state),
    ).values(**values)
    if isinstance(row, Node):
        session.flush()  # an entity handed in: its own pending changes first
    written = session.connection().execute(statement).rowcount == 1
    if written and isinstance(row, Node):
        session.refresh(row)
    return written


def beat_since_verdict(node: Node) -> bool:
    """The node was heard after it was judged (its beat is later than its health's
    change): it is not off, whatever its fence_state says; the fence step refuses it."""
    return node.last_heartbeat is not None and node.health_changed_at is not None \
        and node.last_heartbeat > node.health_changed_at


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _grace() -> dt.timedelta:
    """How much older than the beats a silence read from the database may be."""
    return dt.timedelta(seconds=liveness.staleness())


def _peer_reports(nodes: Sequence[Any], now: dt.datetime
                  ) -> dict[str, dict[str, tuple[float, float]]]:
    """node id -> {fresh reporter id: (the silence it last reported about the node, the
    seconds since that report arrived)}. Its age is counted on the real clock (now plus
    the workers' grace): a report that sits in a buffer is older, never younger."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    real = now + _grace()
    for peer in nodes:
        if peer.state != "up" or (now - peer.last_heartbeat).total_seconds() \
                > ha_confirm.FRESH_WITHIN:
            continue
        ago = (real - peer.last_heartbeat).total_seconds()
        status = peer.host_status or {}
        never = set(peer_view.never_heard(status.get(peer_view.NEVER_HEARD_KEY)))
        for node_id, age in peer_view.reported_ages(status.get(ha_lease.PEERS_KEY)).items():
            # A peer that never heard the node (a new node, an overlay path still being
            # set up: 400 ms round trips take a while) says nothing of a silence.
            if node_id not in never:
                out.setdefault(node_id, {})[peer.id] = (age, ago)
    return out


def _why(node: Any, silence: float, limits: ha_health.Thresholds) -> str:
    """Which rule judged a node down, for the log."""
    peak = node.heartbeat_gap_peak or 0.0
    limit = ha_health.down_threshold(peak, limits)
    if silence > limit:
        return f"past its threshold of {limit:.1f} s, recent longest gap {peak:.2f} s"
    return "most of its peers no longer hear it"


def _tell_instances(session: Session, ctl: Controller, node: Node, silence: float,
                    why: str = "") -> None:
    """Open the evacuate action of each HA instance: detect, fence, rebuild are its events.
    Under a policy that moves nothing, the event says so instead."""
    policy = ha_policies.of_node(session, ctl, node.name)
    log.warning("node %s is down: no heartbeat for %.1f s (%s; HA policy %s)", node.name,
                silence, why, policy)
    said = f"node {node.name} sent no heartbeat for {silence:.1f} s"
    if _noticed(node):
        said += f" past its notice's deadline ({restart_notice.describe(node.host_status)})"
    if not ha_policy.evacuates(policy):
        said += f"; {ha_policy.why_not(policy, node.name)}"
    for inst in _held(session, node):
        if ha_health.ha_enabled(inst.meta):
            if ha_policy.evacuates(policy):
                actions.start(session, inst.id, "evacuate", f"req-ha-{node.name}"[:64], None,
                              inst.project_id)
            actions.event(session, inst.id, "ha_host_down", node.name, "Error", said)


def _held(session: Session, node: Node) -> list[Instance]:
    return list(session.scalars(select(Instance).where(
        Instance.node_id == node.id, Instance.deleted.is_(False))))


def needs_fencing(session: Session, ctl: Controller) -> list[str]:
    """Down nodes nobody vouched for yet: marked pending, so one attempt runs. A node
    whose policy fences nothing (autonomous) is marked skipped, with the reason."""
    found = list(session.scalars(select(Node).where(
        Node.health == ha_health.DOWN, Node.state == "down", Node.forced_down.is_(False),
        Node.fence_state.is_(None))))
    pending = []
    for node in found:
        policy = ha_policies.of_node(session, ctl, node.name)
        if ha_policy.fences(policy):
            node.fence_state = "pending"
            pending.append(node.id)
        else:
            node.fence_state, node.fence_message = "skipped", ha_policy.why_not(
                policy, node.name)
            log.warning("node %s is down and not fenced: %s", node.name, node.fence_message)
    return pending


def fence(ctl: Controller, session: Session, node: Node) -> bool:
    """Power the node off through the fencing module; the operator is told on failure."""
    try:
        from ..fencing.api import fence_node  # noqa: PLC0415 - optional until built
    except ImportError:
        node.fence_state = "failed"
        node.fence_message = (f"no fencing is available; once {node.name} is off, force it "
                              f"down or run 'atwill node fence confirm {node.name}'")
        ok = False
    else:
        ok = fence_node(ctl, session, node).ok
    if not ok:
        log.error("node %s is down but NOT fenced, so nothing is evacuated: %s", node.name,
                  node.fence_message)
    for inst in _held(session, node):
        if ha_health.ha_enabled(inst.meta):
            actions.event(session, inst.id, "ha_fence_node", node.name,
                          "Success" if ok else "Error",
                          node.fence_message if ok else f"not evacuated: {node.fence_message}")
    return ok


def auto_evacuate(session: Session, ctl: Controller) -> int:
    """Evacuate the HA instances of every down node that is fenced or forced down, unless
    its policy leaves that to the operator."""
    count, policies = 0, None
    for node in session.scalars(select(Node).where(Node.health == ha_health.DOWN,
                                                   Node.state == "down")):
        if not (node.forced_down or evacuate.is_fenced(node)):
            continue
        policies = ha_policies.of_nodes(session, ctl) if policies is None else policies
        if not ha_policy.evacuates(policies.get(node.name, ctl.settings.ha_policy)):
            continue
        for inst in _held(session, node):
            if not ha_health.ha_enabled(inst.meta) or inst.task_state is not None \
                    or inst.vm_state not in evacuate.EVACUABLE:
                continue
            evacuate.evacuate(session, ctl, inst, reason="auto", keep_stopped=True,
                              request_id=f"req-ha-{node.name}"[:64])
            count += 1
    if count:
        bump(session)
    return count


def finish(session: Session) -> None:
    """Evacuations whose instance runs on its new node are done (2.95: stopped again)."""
    for record in session.scalars(select(Evacuation).where(Evacuation.status == "rebuilding")):
        inst = session.get(Instance, record.instance_id)
        if inst is None or inst.deleted or inst.node_name != record.dest_node_name:
            record.status = "failed"
            continue
        if inst.task_state is not None:
            continue
        if inst.vm_state == "error" or inst.node_id is None:
            record.status = "failed"  # its rebuild there failed: the old copy is kept
            continue
        record.status = "done"
        if record.stop_after and inst.vm_state == "active":
            inst.task_state, inst.desired_power = "powering-off", "stopped"
            # Its power is its own node's business alone (an os-stop: node_scope).
            bump(session, nodes={inst.node_id})


def returned(session: Session, node: Node, reports: dict[str, Any] | None) -> None:
    """A heartbeat: a down node is back (unfenced); its destroyed stale copies are noted.
    So is an up node marked fenced (confirmed off while silent, ha/silence_guard): it
    beats, so it is not off, and a stale mark must not let a later silence evacuate it
    unfenced."""
    if node.health == ha_health.DOWN or node.state == "down" or evacuate.is_fenced(node):
        log.warning("node %s is back (it was %s)", node.name,
                    "fenced" if evacuate.is_fenced(node) else "down, not fenced")
        node.health, node.health_changed_at = ha_health.UP, utcnow()
        node.fence_state = node.fence_method = node.fence_message = None
        node.fenced_at = None
    elif node.health != ha_health.UP:
        node.health, node.health_changed_at = ha_health.UP, utcnow()
    if reports is None:
        return
    for record in session.scalars(select(Evacuation).where(
            Evacuation.source_node_id == node.id, Evacuation.cleaned_at.is_(None))):
        if record.instance_id not in reports:
            record.cleaned_at = utcnow()
            log.info("node %s no longer holds evacuated instance %s", node.name,
                     record.instance_id)


def stale_copies(session: Session, node: Node) -> list[str]:
    """Instances whose copy on node must be destroyed: evacuated away, or deleted there.
    An evacuated server's copy goes once the server is deleted or placed on another node;
    while it is on none (its evacuation, or its rebuild elsewhere, failed: ERROR, as
    Nova's failed migration record keeps it in _destroy_evacuated_instances) or on this
    node again, the copy here may be the only one it has and is kept."""
    moved = set(session.scalars(select(Evacuation.instance_id).join(
        Instance, Instance.id == Evacuation.instance_id).where(
        Evacuation.source_node_id == node.id, Evacuation.cleaned_at.is_(None),
        or_(Instance.deleted.is_(True),
            Instance.node_id.is_not(None) & (Instance.node_id != node.id)))))
    recent = utcnow() - dt.timedelta(days=7)
    deleted = set(session.scalars(select(Instance.id).where(
        Instance.deleted.is_(True), Instance.node_name == node.name,
        Instance.terminated_at > recent)))
    return sorted(moved | deleted)
