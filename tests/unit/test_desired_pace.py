"""The long-poll's pacing (cluster/desired_pace.py): a node not built lately is built at
once; soon after a build, the next waits for the pace the recent builds set (the nodes
built lately times their mean build time, over the share of the worker they may take),
never longer than the most, and not at all with the most 0."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest
from starlette.requests import Request

from atwill.controller.cluster import agents, desired_pace
from atwill.controller.cluster.desired_pace import Pace
from atwill.core.errors import Unauthorized


def test_a_node_not_built_lately_is_built_at_once() -> None:
    pace = Pace(hold=1.0)
    assert pace.hold("a") == 0.0
    pace.built("b", 0.5)  # another node's build holds no other
    assert pace.hold("a") == 0.0


def test_the_pace_grows_with_the_nodes_built_lately_up_to_the_most() -> None:
    pace = Pace(hold=1.0)
    pace.built("a", 0.01)
    expected = 1 * 0.01 / desired_pace.SHARE  # one node, 10 ms: 40 ms
    assert expected - 0.01 < pace.hold("a") <= expected
    for n in range(50):
        pace.built(f"n{n}", 0.012)
    assert 0.95 < pace.hold("a") <= 1.0  # 51 nodes at ~12 ms: the most
    assert 0.95 < pace.hold("n7") <= 1.0


def test_no_pacing_with_the_most_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    pace = Pace(hold=0.0)
    for n in range(50):
        pace.built(f"n{n}", 0.05)
    assert pace.hold("n3") == 0.0


def test_builds_older_than_the_window_set_no_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(desired_pace.time, "monotonic", lambda: now[0])
    pace = Pace(hold=1.0)
    for n in range(50):
        pace.built(f"n{n}", 0.02)
    assert pace.hold("n1") == 1.0
    now[0] += 0.4
    assert pace.hold("n1") == pytest.approx(0.6)
    now[0] += desired_pace.WINDOW
    assert pace.hold("n1") == 0.0  # built longer ago than the window: at once
    pace.built("n1", 0.02)  # the only build in the window now: its own pace
    assert pace.hold("n1") == pytest.approx(0.02 / desired_pace.SHARE)


def test_at_most_builds_long_polls_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desired_pace, "BUILDS", 2)
    inside, most = [0], [0]

    async def poll() -> None:
        async with desired_pace.gate():
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            await asyncio.sleep(0.01)
            inside[0] -= 1

    async def storm() -> None:
        await asyncio.gather(*(poll() for _ in range(10)))

    asyncio.run(storm())
    assert most[0] == 2
    monkeypatch.setattr(desired_pace, "BUILDS", 0)  # no limit
    most[0] = 0
    asyncio.run(storm())
    assert most[0] == 10


def test_the_pacing_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A hold delays every change, security-group rule removals included: off by default."""
    monkeypatch.delenv("ATWILL_DESIRED_HOLD", raising=False)
    assert desired_pace._setting("ATWILL_DESIRED_HOLD", 0.0) == 0.0
    monkeypatch.setenv("ATWILL_DESIRED_HOLD", "0.5")
    assert desired_pace._setting("ATWILL_DESIRED_HOLD", 0.0) == 0.5


@pytest.mark.parametrize("raw", ["fast", "-1", "nan", "inf", "1e999"])
def test_a_bad_setting_is_the_default(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("ATWILL_DESIRED_HOLD", raw)
    monkeypatch.setenv("ATWILL_DESIRED_BUILDS", raw)
    assert desired_pace._setting("ATWILL_DESIRED_HOLD", 0.0) == 0.0
    assert desired_pace._setting("ATWILL_DESIRED_BUILDS", 2, int) == 2
    monkeypatch.setenv("ATWILL_DESIRED_BUILDS", "2.5")
    assert desired_pace._setting("ATWILL_DESIRED_BUILDS", 2, int) == 2


def test_a_turn_is_waited_for_no_longer_than_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(desired_pace, "BUILDS", 1)

    async def run() -> list[bool]:
        seen: list[bool] = []
        async with desired_pace.turn(0) as first:  # free: taken at once, even at 0
            seen.append(first)
            started = time.monotonic()
            async with desired_pace.turn(0.1) as second:
                seen.append(second)
            assert time.monotonic() - started < 1.0
            async with desired_pace.turn(0) as third:
                seen.append(third)
        async with desired_pace.turn(0.1) as fourth:  # the slot came back
            seen.append(fourth)
        return seen

    assert asyncio.run(run()) == [True, False, False, True]


def test_a_caller_without_the_certificate_takes_no_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before the gate: a flood of such calls cannot hold up the nodes' polls
    (before, each took a turn, waiting behind the nodes' own without a bound)."""
    monkeypatch.setattr(desired_pace, "BUILDS", 2)
    ctl = SimpleNamespace(db=None, settings=None)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [],
             "query_string": b"", "app": SimpleNamespace(state=SimpleNamespace(ctl=ctl))}

    async def run() -> None:
        gate = desired_pace.gate()
        for _ in range(2):  # the nodes' long-polls hold every turn
            await gate.acquire()
        with pytest.raises(Unauthorized):
            await asyncio.wait_for(agents.desired_get("id-x", Request(scope), -1, 5.0), 1.0)

    asyncio.run(run())
