"""The migration benchmark's parsing and ratios (bench/migration_figures.py)."""

from __future__ import annotations

import pytest

from atwill.bench import migration_figures as fig

LOG = ("2026-12-06 INFO migration 3: disk mirrored to 10.0.0.2; migrating the memory\n"
       "2026-12-06 INFO migration completed: downtime 136 ms, total 2004 ms, "
       "5242880 bytes of memory\n"
       "2026-12-06 INFO migration completed: downtime 41 ms, total 950 ms, "
       "1000 bytes of memory\n")

PING = ("PING 10.9.0.5 (10.9.0.5) 56(84) bytes of data.\n"
        "[1000.000000] 64 bytes from 10.9.0.5: icmp_seq=1 ttl=64 time=0.4 ms\n"
        "[1000.020000] 64 bytes from 10.9.0.5: icmp_seq=2 ttl=64 time=0.4 ms\n"
        "no answer yet for icmp_seq=3\n"
        "[1000.370000] 64 bytes from 10.9.0.5: icmp_seq=20 ttl=64 time=0.5 ms\n"
        "[1000.390000] 64 bytes from 10.9.0.5: icmp_seq=21 ttl=64 time=0.5 ms\n")


def test_qemu_figures_are_read_from_the_agents_log_in_order() -> None:
    assert fig.qemu_completed(LOG) == [
        {"downtime_ms": 136, "total_ms": 2004, "bytes": 5242880},
        {"downtime_ms": 41, "total_ms": 950, "bytes": 1000}]
    assert fig.qemu_completed("migration 3: mirroring the disk") == []


def test_the_longest_gap_is_between_consecutive_replies() -> None:
    seen = fig.replies(PING)
    assert [seq for _, seq in seen] == [1, 2, 20, 21]
    assert fig.longest_gap_ms(seen) == pytest.approx(350)
    assert fig.longest_gap_ms(seen[:1]) is None


def test_ratios_to_the_hand_made_migration() -> None:
    hand = {"downtime_ms": 50, "total_ms": 2000, "bytes": 100}
    run = fig.with_ratios({"downtime_ms": 150, "total_ms": 2400, "bytes": 300,
                           "api_s": 3.0}, hand)
    assert (run["downtime_ratio"], run["total_ratio"], run["bytes_ratio"]) == (3, 1.2, 3)
    assert run["api_total_ratio"] == pytest.approx(1.5)
    assert fig.ratio(1, 0) is None and fig.ratio(None, 2) is None
    text = fig.table({"idle": run, "hand": hand})
    assert "idle" in text.splitlines()[1] and " 3.00" in text.splitlines()[1]


def test_missing_figures_keep_the_columns_aligned() -> None:
    hand = {"downtime_ms": 110, "total_ms": 1421, "bytes": 92753710}
    lines = fig.table({"idle": fig.with_ratios({"downtime_ms": 125, "gap_ms": 416.0,
                                                "total_ms": 1699, "api_s": 3.03,
                                                "bytes": 95159114}, hand),
                       "idle hand": hand}).splitlines()
    assert len({len(line) for line in lines}) == 1, lines
    assert lines[2].split() == ["idle", "hand", "110", "-", "1421", "-", "88.5", "-", "-",
                                "-"]
