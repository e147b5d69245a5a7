"""The lean path's periodic full pass (liveness.REFRESH) is spread: a node new to the
worker (after a restart, every node) gets its first refresh earlier by a random share of
at most SPREAD, never later, so 2,000 nodes' refreshes do not come back as one wave;
a node already known refreshes REFRESH after its last full pass. And the lane's encoded
replies are the JSON of the reply."""

from __future__ import annotations

import json
import time

from atwill.controller.cluster import heartbeat_lane, liveness
from atwill.controller.cluster.liveness import REFRESH, SPREAD, Liveness, Seen

SEEN = Seen("serial", "10.0.0.1", True, 5, liveness.digest({}, {}))


def test_a_new_nodes_first_refresh_is_spread_and_never_late() -> None:
    live = Liveness(db=None)
    before = time.monotonic()
    for index in range(200):
        live.full(f"n{index}", b"c", SEEN, live.token(f"n{index}"))
    after = time.monotonic()
    ages = [after - known.full_at for known in live._known.values()]
    assert all(age <= SPREAD * REFRESH + (after - before) for age in ages)
    assert all(known.full_at <= after for known in live._known.values())
    assert max(ages) - min(ages) > SPREAD * REFRESH / 4  # spread, not one instant
    again = time.monotonic()
    live.full("n0", b"c", SEEN, live.token("n0"))  # known: its next refresh is REFRESH on
    assert live._known["n0"].full_at >= again


def test_the_lanes_replies_are_the_json_of_the_reply() -> None:
    for reply in ({"revision": 7, "state": "up"}, {"revision": 7, "state": "up"},
                  {"revision": 8, "state": "up", "extra": 1}, {"revision": "x", "state": 1}):
        assert json.loads(heartbeat_lane._encoded(dict(reply))) == reply
