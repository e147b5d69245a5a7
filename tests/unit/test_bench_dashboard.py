"""`atwill bench dashboard`: its options are bounded before any controller starts."""

from __future__ import annotations

from typer.testing import CliRunner

from atwill.cli.main import app


def test_bench_dashboard_is_a_command_with_bounded_options() -> None:
    shown = CliRunner().invoke(app, ["bench", "dashboard", "--help"])
    assert shown.exit_code == 0 and "--instances" in shown.output and "--rounds" in shown.output
    for bad in (["--instances", "0"], ["--rounds", "1"], ["--instances", "many"]):
        refused = CliRunner().invoke(app, ["bench", "dashboard", *bad])
        assert refused.exit_code == 2, (bad, refused.output)
