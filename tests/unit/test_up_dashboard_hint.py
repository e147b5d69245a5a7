"""`atwill up` prints the dashboard's URL among its hints (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.cli import up as up_cmd


def test_up_prints_the_dashboard_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    conf = up_cmd.Settings(state_dir=tmp_path, overlay="none")
    up_cmd._hints(conf)
    lines = capsys.readouterr().out.splitlines()
    assert f"dashboard:   {conf.public_url}/dashboard  (log in as admin)" in lines
    assert conf.public_url.startswith("https://")
