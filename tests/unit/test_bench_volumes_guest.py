"""`atwill bench volumes --guest`: the guest's script and what its console lines make."""

from __future__ import annotations

import subprocess

import pytest

from atwill.bench import volumes_guest as vg
from atwill.bench import volumes_guest_figures as fig

SIZES = {"mib": 64, "small": 1024, "rand": 200}


def _line(rnd: int, target: str, code: str, seconds: float, start: float = 1796593022.5) -> str:
    return f"VBENCH T {rnd} {target} {code} {start:.6f} {start + seconds:.6f}"


def test_parse_reads_timed_lines_among_kernel_noise_and_errors() -> None:
    console = "\n".join([
        "[   12.3] virtio_blk virtio3: [vdb] 2097152 512-byte logical blocks",
        _line(0, "vol", "sw", 4.0),
        "garbage " + _line(1, "loc", "sr", 0.5),
        "VBENCH ERR 2 vol rr dd: /dev/vdb: Input/output error",
        "VBENCH END"])
    runs, errors = fig.parse(console)
    assert [(r, t, c) for r, t, c, _ in runs] == [(0, "vol", "sw"), (1, "loc", "sr")]
    assert runs[1][3] == pytest.approx(0.5)
    assert errors == ["2 vol rr dd: /dev/vdb: Input/output error"]


def test_rates_by_case() -> None:
    assert fig.rate("sw", 2.0, SIZES, None) == 32.0  # MiB/s
    assert fig.rate("qr", 0.5, SIZES, None) == 2048.0  # IOPS
    # Random: the spawn baseline of the round comes off; without it, no figure.
    assert fig.rate("rr", 3.0, SIZES, 1.0) == 100.0
    assert fig.rate("rr", 3.0, SIZES, None) is None
    assert fig.rate("rw", 1.0, SIZES, 1.5) is None


def test_figures_keep_the_best_leave_the_fill_out_and_give_ratios() -> None:
    runs = [(0, "vol", "sw", 100.0), (0, "loc", "sw", 100.0)]  # the fill: not counted
    for rnd, vol_s, loc_s in ((1, 2.0, 1.0), (2, 1.6, 1.0), (3, 4.0, 2.0)):
        runs += [(rnd, "vol", "sr", vol_s), (rnd, "loc", "sr", loc_s),
                 (rnd, "vol", "rr", 3.0), (rnd, "loc", "rr", 2.0), (rnd, "none", "sp", 1.0)]
    figs = fig.figures(runs, SIZES)
    seq = figs["seq-read"]
    assert seq["unit"] == "MiB/s" and seq["vol"] == [32.0, 40.0, 16.0]
    assert seq["ratio"] == 0.62  # best 40 / best 64
    assert seq["median_ratio"] == 0.5  # 32 / 64
    assert figs["4k-randread"]["vol"] == [100.0] * 3 and figs["4k-randread"]["ratio"] == 0.5
    assert "seq-write" not in figs  # only the fill ran
    assert figs["spawn_s"] == 1.0


def test_verdict_needs_both_sequential_cases_at_70_percent() -> None:
    assert fig.verdict({}) == "not measured"
    both = {"seq-write": {"ratio": 0.7}, "seq-read": {"ratio": 0.9}}
    assert fig.verdict(both) == "met"
    assert fig.verdict({**both, "seq-read": {"ratio": 0.69}}) == "missed"


def test_report_says_tcg_and_missing_cases() -> None:
    figs = {"seq-read": {"unit": "MiB/s", "vol": [40.0], "loc": [64.0], "ratio": 0.62,
                         "median_ratio": 0.62}}
    text = fig.report(figs, {"storage": "node2", "compute": "node1", "rounds": 1,
                             "accel": "tcg"})
    assert "seq-write: not measured" in text and "ratio 0.62" in text
    assert "TCG" in text and "not measured" in text.splitlines()[-2]


def test_guest_script_is_valid_shell_with_the_sizes() -> None:
    text = vg.script("0123456789abcdef0123", SIZES, 3)
    assert "S=0123456789abcdef0123; MIB=64; SMALL=1024; RAND=200; ROUNDS=3; OFF=256" in text
    assert "oflag=direct" in text and "iflag=direct" in text
    done = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


def test_budget_grows_with_the_sizes() -> None:
    assert vg.budget(SIZES, 3) < vg.budget({**SIZES, "mib": 256}, 3)
    assert vg.budget(SIZES, 1) < vg.budget(SIZES, 3)


def test_one_at_a_time_requests_must_fit_in_the_filled_area() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        vg.main(mib=8, small=8 * 256 + 1)
