"""Autojoin into host aggregates: ATWILL_JOIN_AGGREGATES reaches the join."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atwill.agent import autojoin
from atwill.agent.autojoin import JoinSettings

GOOD = {"ATWILL_JOIN_URL": "https://10.1.2.3:8686", "ATWILL_JOIN_TOKEN": "tok",
        "ATWILL_JOIN_CA_HASH": "sha256:ab"}


def test_aggregates_from_the_file_are_passed_to_the_join(tmp_path: Path) -> None:
    path = tmp_path / "join.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in GOOD.items())
                    + "ATWILL_JOIN_AGGREGATES= gpu, site-b ,,\n")
    settings = JoinSettings.find({}, path)
    assert settings is not None and settings.aggregates == ("gpu", "site-b")
    asked: list[dict[str, Any]] = []

    def join_once(*args: Any, **kw: Any) -> Any:
        asked.append(kw)
        return type("Config", (), {"name": "n", "node_id": "id"})()

    autojoin.autojoin(settings, tmp_path / "node", join_once=join_once)
    assert asked == [{"aggregates": ["gpu", "site-b"]}]
    plain = JoinSettings.find(GOOD, tmp_path / "absent")
    assert plain is not None and plain.aggregates == ()
    autojoin.autojoin(plain, tmp_path / "node", join_once=join_once)
    assert asked[-1] == {}
