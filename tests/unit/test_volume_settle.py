"""controller/volume/settle.py's pure parts: when a node counts as gone, and which rows a
returning node's report resumes (only those the sweep settled, from the state it says)."""

from __future__ import annotations

import datetime as dt

from atwill.controller.db.models import Node
from atwill.controller.db.volume import Volume
from atwill.controller.volume import settle

NOW = dt.datetime(2026, 12, 7, 12, 0, 0)


def _node(**values: object) -> Node:
    base = {"name": "s1", "state": "up", "forced_down": False, "fence_state": None,
            "last_heartbeat": NOW - dt.timedelta(seconds=600), "health_changed_at": None,
            "created_at": NOW - dt.timedelta(days=1)}
    return Node(**{**base, **values})


def test_gone_needs_a_verdict_and_the_silence() -> None:
    assert settle.gone(_node(), NOW, 300) is None  # up: its reports settle it
    assert settle.gone(_node(state="down"), NOW, 300) == 600
    assert settle.gone(_node(forced_down=True), NOW, 300) == 600
    assert settle.gone(_node(fence_state="ok"), NOW, 300) == 600
    assert settle.gone(_node(fence_state="failed"), NOW, 300) is None
    assert settle.gone(_node(state="down"), NOW, 900) is None  # not silent long enough
    assert settle.gone(_node(state="down"), NOW, 0) is None  # 0: never
    # Judged down 100 s ago (a controller back from an outage): 100 s, not the silence.
    assert settle.gone(_node(state="down", health_changed_at=NOW - dt.timedelta(
        seconds=100)), NOW, 300) is None


def test_resume_only_what_the_sweep_settled() -> None:
    said = settle.MESSAGE.format(node="s1", silence=600, what="volume", state="extending")
    assert settle.settled_from(said) == "extending"
    vol = Volume(status="error_extending", error=said)
    assert settle.resume(vol, settle.VOLUME_ERRORS)
    assert (vol.status, vol.error) == ("extending", None)
    reset = Volume(status="available", error=said)  # an admin reset it meanwhile
    assert not settle.resume(reset, settle.VOLUME_ERRORS) and reset.status == "available"
    failed = Volume(status="error", error="qemu-img: no space left")
    assert not settle.resume(failed, settle.VOLUME_ERRORS)
    assert settle.settled_from(None) is None
