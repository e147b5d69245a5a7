"""The order of a node's heartbeats: (epoch, seq), and which beat a controller applies.

An agent stamps each heartbeat with its run's epoch (a counter kept in its state dir,
raised at every start, so a restarted agent's beats order after its previous run's) and
a sequence number raised at every beat it sends. The controller stores the last applied
pair on the node's row and applies a beat only when its pair is greater, in the same
statement that stores it (agents._heartbeat, liveness.WRITE): a beat that a hung
controller applies late, after a newer one went to another controller, changes nothing
(409, error type heartbeat_stale). So the agent may give up on a controller that does not
answer in time and send its next beat to the next one (agent/client.py).

The pair travels in a request header (HEADER: "<epoch>.<seq>"): a controller that does not
know it ignores it, where a body field would be refused by its strict model. A beat
without it (an older agent) is applied as before, unordered, and leaves the stored pair
as it is. The reply of a controller that orders beats says `"ordered": true`; an agent
times a beat out early only on a controller that said so.

Epochs stay below CEILING (far below LIMIT, which a header may carry): an agent never
takes an epoch above it, and a controller treats a stored epoch at or above it as no
order held (claim, the flush's WHERE), so a pair pushed to the limit (a bug, a forged
beat with the node's certificate) cannot lock the node out: its next beat applies and
puts a sane pair back. An agent told of a held epoch at the ceiling takes the ceiling
itself (applied over anything below; logged as an error), and its next start begins
again at 1 (applied over the ceiling).

A node fenced with its power confirmed off (fence_state "ok", by a device or an
operator's confirm, not a lease) comes back only with a beat of a later epoch than the
stored one (agents.claim): a power-cycled host restarts its agent, which takes a new
epoch, while a beat sent before the fence and applied late by a hung controller has the
old one. A lease fence (the host may still run, its agent killed its HA VMs), a pending,
failed or skipped fence (power not confirmed off, nothing evacuated) and unordered beats
(older agents) return the node as before. The refusal has its own error type (FENCED,
409 heartbeat_fenced): an agent that gets it is running, so the fence was wrong (an
operator's confirm of a node only suspect, a device that said off while the host ran)
and it takes a new epoch at once (logged as an error): its next beat returns the node
within one interval, where before it resent its old epoch's beats for good while its
VMs were evacuated. A late beat applied by a hung controller still cannot return a host
that is really off: the refusal goes to no one (its agent is gone).

A controller whose claim waited for the node's row lock in vain answers 503 with type
BUSY (another controller's transaction holds the row, maybe a hung one): the agent
sends the beat on to the next controller at once (agent/client.Failover) and otherwise
beats again at the interval, never after a backoff.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import BadRequest

HEADER = "X-Atwill-Heartbeat-Order"
STALE = "heartbeat_stale"  # the 409's error type
FENCED = "heartbeat_fenced"  # the 409's type for a node fenced off: take a new epoch
BUSY = "heartbeat_row_busy"  # the 503's type: the row is locked; try the next controller
LIMIT = 2**62  # both numbers fit a BIGINT, with room
CEILING = 2**61  # the highest epoch an agent takes; a stored one at or above: none held
FENCED_OFF = "ok"  # nodes.fence_state of a node fenced (power off confirmed)
SELF_FENCED = "lease"  # nodes.fence_method of a lease fence: the host may still run


class Order(NamedTuple):
    epoch: int
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}.{self.seq}"


def parse(value: str | None) -> Order | None:
    """The header's pair; None when absent; 400 when malformed."""
    if value is None:
        return None
    epoch, dot, seq = value.strip().partition(".")
    if not dot or not epoch.isdigit() or not seq.isdigit() or not epoch.isascii() \
            or not seq.isascii() or len(epoch) > 19 or len(seq) > 19 \
            or int(epoch) >= LIMIT or int(seq) >= LIMIT or int(epoch) < 1:
        raise BadRequest(f"Invalid {HEADER} header: expected '<epoch>.<seq>', two whole "
                         f"numbers below {LIMIT} (epoch at least 1).")
    return Order(int(epoch), int(seq))


def applies(stored: Order | None, beat: Order | None) -> bool:
    """Whether a beat is applied over what the node's row holds: an unordered beat always
    (an older agent, as before), an ordered one only when greater than the stored pair."""
    if beat is None or stored is None or stored.epoch >= CEILING:
        return True
    return beat > stored


def stored(epoch: int | None, seq: int | None) -> Order | None:
    """The pair as a row holds it (NULLs: none yet; an epoch at the ceiling: none)."""
    if epoch is None or seq is None or int(epoch) >= CEILING:
        return None
    return Order(int(epoch), int(seq))


def next_epoch(previous: int | None, seen: int | None = None) -> int:
    """A new run's epoch: above the last one this agent kept, and above one the
    controller said it holds (a state dir restored from an older copy); never above
    CEILING (a held epoch at the ceiling counts as none: beat_order.applies)."""
    return min(max(previous or 0, seen or 0) + 1, CEILING)


def restarted_needed(own: Order, held: Order | None) -> bool:
    """A stale answer to one's own beat: whether the agent must take a new epoch. When
    the controller holds a pair above the highest this run issued (`own`: its epoch and
    last seq): a later epoch (its kept counter went back) or this epoch with a higher
    seq (the epoch was reused: its file could not be written, or was restored one run
    old, or wiped after a first run). Without moving on, every beat of the run would be
    stale until its seq passed the held one. A pair at or below `own` (a copy of a beat
    applied twice, a late answer) is not; neither is one at the ceiling (none held)."""
    return held is not None and held > own and held.epoch < CEILING


def fenced_seen(own: Order, held: Order | None) -> int:
    """What an agent told its node is fenced off takes its new epoch above (next_epoch's
    `seen`): its own epoch and the held one (the header may be missing: its own then)."""
    if held is None or held.epoch >= CEILING:
        return own.epoch
    return max(own.epoch, held.epoch)


def fenced_needs_new_epoch(fence_state: str | None, fence_method: str | None,
                           fenced: bool) -> bool:
    """Whether a node in this fence state comes back only with a later epoch than the
    stored one: fenced with its power confirmed off (not a lease fence: see above)."""
    return fenced and fence_state == FENCED_OFF and fence_method != SELF_FENCED


__all__ = ["BUSY", "CEILING", "FENCED", "FENCED_OFF", "HEADER", "LIMIT", "SELF_FENCED",
           "STALE", "Order", "applies", "fenced_needs_new_epoch", "fenced_seen",
           "next_epoch", "parse", "restarted_needed", "stored"]
