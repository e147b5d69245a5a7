"""bench creates: its figures from timestamps, and its options bounded before any controller
starts."""

from __future__ import annotations

from typer.testing import CliRunner

from atwill.bench.creates_figures import figures, sustained
from atwill.cli.main import app


def test_sustained_leaves_out_the_ramp_and_the_tail() -> None:
    # 11 completions one a second in the middle, a slow start and a long tail around them.
    times = [0.0] + [10.0 + i for i in range(9)] + [100.0]
    assert sustained(times) == 1.0  # from the 2nd to the 10th: 8 in 8 s
    assert sustained([1.0, 2.0]) is None
    assert sustained([5.0, 5.0, 5.0]) is None


def test_figures_count_a_server_never_active_and_a_refused_post_as_errors() -> None:
    posts = [(0.0, 0.1, "a"), (0.0, 0.2, "b"), (0.1, 0.5, None), (0.2, 1.0, "c")]
    out = figures(0.0, posts, {"a": 1.0, "b": 2.0}, ["500 boom"])
    assert (out["posts"], out["accepted"], out["active"], out["errors"]) == (4, 3, 2, 2)
    assert out["accepted_per_s"] == 3.0  # 3 accepted by 1.0 s
    assert out["active_per_s"] == 1.0  # 2 ACTIVE by 2.0 s
    assert out["to_active_p50_ms"] == 2000.0 and out["post_p99_ms"] == 800.0


def test_figures_of_an_empty_run() -> None:
    out = figures(0.0, [], {}, [])
    assert out["accepted_per_s"] is None and out["post_p50_ms"] is None
    assert out["errors"] == 0


def test_bench_creates_is_a_command_with_bounded_options() -> None:
    shown = CliRunner().invoke(app, ["bench", "creates", "--help"])
    assert shown.exit_code == 0 and "--creates" in shown.output and "SIMULATED" in shown.output
    for bad in (["--nodes", "0"], ["--connections", "0"], ["--creates", "many"]):
        refused = CliRunner().invoke(app, ["bench", "creates", *bad])
        assert refused.exit_code == 2, (bad, refused.output)
