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
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import BadRequest

HEADER = "X-Atwill-Heartbeat-Order"
STALE = "heartbeat_stale"  # the 409's error type
LIMIT = 2**62  # both numbers fit a BIGINT, with room


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
    if beat is None or stored is None:
        return True
    return beat > stored


def stored(epoch: int | None, seq: int | None) -> Order | None:
    """The pair as a row holds it (NULLs: none yet)."""
    if epoch is None or seq is None:
        return None
    return Order(int(epoch), int(seq))


def next_epoch(previous: int | None, seen: int | None = None) -> int:
    """A new run's epoch: above the last one this agent kept, and above one the
    controller said it holds (a state dir restored from an older copy)."""
    return max(previous or 0, seen or 0) + 1


def restarted_needed(own: Order, held: Order | None) -> bool:
    """A stale answer to one's own beat: whether the agent must take a new epoch. Only
    when the controller holds a later epoch than the agent's own (its kept counter went
    back); a pair of its own run (a copy of a beat applied twice, a late answer) is not."""
    return held is not None and held.epoch > own.epoch


__all__ = ["HEADER", "LIMIT", "STALE", "Order", "applies", "next_epoch", "parse",
           "restarted_needed", "stored"]
