"""bench ha's double-copy sampler (ha_sampler) and its before/after and rounds lines."""

from __future__ import annotations

from atwill.bench import ha_figures as figures
from atwill.bench import ha_sampler

ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def test_the_instance_is_read_from_qemus_command_line() -> None:
    cmdline = b"qemu-system-x86_64\x00-name\x00x\x00-uuid\x00" + ID.encode() + b"\x00-m\x00256\x00"
    match = ha_sampler.UUID.search(cmdline)
    assert match is not None and match.group(1).decode() == ID


def test_twice_is_one_instance_on_two_hosts_not_two_processes_on_one() -> None:
    sample = {ID: {"node1", "node2"}, "other": {"node3"}}
    assert ha_sampler.twice(sample) == [ID]
    assert ha_sampler.twice({ID: {"node1"}}) == []


def _summary(detect: float, total: float) -> dict:
    return {"10": {"detection_median_s": detect, "detection_p95_s": detect + 1,
                   "total_median_s": total}}


def test_before_after_is_a_ratio_of_the_same_run() -> None:
    r = {"summary": _summary(2.0, 6.0), "before": {"summary": _summary(4.0, 8.0)}}
    lines = figures._before_after(r)
    assert r["before_after"] == {"detection_median": 0.5, "detection_p95": 0.6,
                                 "total_median": 0.75}
    assert "0.50x / 0.60x" in lines[-1]
    assert figures._before_after({"summary": {}}) == []


def test_rounds_line_counts_double_copies() -> None:
    r = {"partition_rounds": {"rounds": 2, "asked": 3, "elapsed_s": 80.0, "samples": 800,
                              "double_copy_samples": 0, "rounds_with_stray_state": 0,
                              "per_round": [{"active_elsewhere_s": 7.5},
                                            {"active_elsewhere_s": 8.0}]}}
    line = figures._rounds(r)[-1]
    assert "2 of 3 rounds" in line and "0 of 800 samples" in line
