"""`atwill bench creates` run tiny: servers created through the compute API reach ACTIVE
through SIMULATED nodes' reports, no error, no node overbooked (the bench's own checks)."""

from __future__ import annotations

from atwill.bench.creates import main


def test_bench_creates_tiny_run() -> None:
    out = main(nodes=2, creates=6, seconds=20, connections=2, settle_s=20)
    assert (out["accepted"], out["active"], out["errors"]) == (6, 6, 0), out
    assert out["overbooked_nodes"] == 0 and out["heartbeat_errors"] == 0, out
    assert out["flavor_lists_per_s"] > 0 and out["accepted_per_s"] > 0, out
