"""The HA benchmark's figures: phases from the poller's samples, log counts, percentiles."""

from __future__ import annotations

from atwill.bench import ha_figures as figures

CUT = 1024.0  # exact in binary: the differences below are exact too


def _sample(t: float, *servers: tuple[str, str, str, str]) -> list:
    return [CUT + t, [list(s) for s in servers]]


def test_split_reads_detection_fencing_and_the_last_server_active() -> None:
    samples = [
        _sample(0.2, ("a", "ACTIVE", "node1", "UP"), ("b", "ACTIVE", "node1", "UP")),
        _sample(2.75, ("a", "ACTIVE", "node1", "UNKNOWN"), ("b", "ACTIVE", "node1", "UNKNOWN")),
        _sample(3.5, ("a", "ACTIVE", "node1", "DOWN"), ("b", "ACTIVE", "node1", "DOWN")),
        _sample(4.0, ("a", "REBUILD", "node2", "UP"), ("b", "ACTIVE", "node3", "UP")),
        _sample(5.0, ("a", "ACTIVE", "node2", "UP"), ("b", "ACTIVE", "node3", "UP")),
    ]
    got = figures.split(samples, CUT, "node1")
    assert got == {"detect": 2.75, "fence": 3.5, "active": 5.0}


def test_split_counts_a_node_fenced_between_two_samples_as_detected_then() -> None:
    samples = [_sample(1.0, ("a", "ACTIVE", "node1", "DOWN")),
               _sample(2.0, ("a", "ACTIVE", "node2", "UP"))]
    assert figures.split(samples, CUT, "node1") == {"detect": 1.0, "fence": 1.0, "active": 2.0}


def test_split_takes_servers_leaving_the_node_as_fenced_when_down_is_never_seen() -> None:
    samples = [_sample(2.5, ("a", "ACTIVE", "node1", "UNKNOWN"), ("b", "ACTIVE", "node1", "UP")),
               _sample(3.0, ("a", "REBUILD", "node2", "UP"), ("b", "REBUILD", "node3", "UP")),
               _sample(4.5, ("a", "ACTIVE", "node2", "UP"), ("b", "ACTIVE", "node3", "UP"))]
    assert figures.split(samples, CUT, "node1") == {"detect": 2.5, "fence": 3.0, "active": 4.5}


def test_split_leaves_what_never_happened_unset() -> None:
    samples = [_sample(1.0, ("a", "ACTIVE", "node1", "UNKNOWN"))]
    assert figures.split(samples, CUT, "node1") == {"detect": 1.0, "fence": None,
                                                    "active": None}


def test_events_must_be_detect_then_successful_fence_then_rebuild() -> None:
    good = [["ha_host_down", "2026-12-06T05:00:01Z", "Error"],
            ["ha_fence_node", "2026-12-06T05:00:02Z", "Success"],
            ["conductor_rebuild_server", "2026-12-06T05:00:02Z", "Success"]]
    assert figures.events_in_order(good)
    assert not figures.events_in_order([good[0], good[2]])
    assert not figures.events_in_order([good[0], [*good[1][:2], "Error"], good[2]])
    late_fence = [good[0], ["ha_fence_node", "2026-12-06T05:00:03Z", "Success"], good[2]]
    assert not figures.events_in_order(late_fence)


def test_log_counts_are_about_the_named_node_only() -> None:
    ctl = ("node node1 is down: no heartbeat for 2.7 s (HA policy evacuate)\n"
           "node node1 fenced: fence_ipmilan bmc: off\n"
           "node node1 NOT fenced: bmc unreachable\n"
           "instance x (active) evacuated from node1 to node2; ...\n"
           "node node11 is down: no heartbeat for 3.0 s\n"
           "instance y (active) evacuated from node11 to node2; ...\n")
    agent = "SELF-FENCING: lease of 6.0 s not renewed\n"
    assert figures.log_counts(ctl, agent, "node1") == {
        "detections": 1, "fence_attempts": 2, "evacuations": 1, "self_fencings": 1}
    assert figures.log_counts("", "", "node1") == dict.fromkeys(
        ("detections", "fence_attempts", "evacuations", "self_fencings"), 0)


def test_percentile_is_nearest_rank() -> None:
    assert figures.percentile([3.0, 1.0, 2.0], 0.95) == 3.0
    assert figures.percentile(list(map(float, range(1, 21))), 0.95) == 19.0
    assert figures.percentile([4.0], 0.5) == 4.0


def test_summary_splits_phases_and_skips_incomplete_runs() -> None:
    runs = [{"detect": 2.0, "fence": 3.0, "active": 6.0, "events_in_order": True},
            {"detect": 2.5, "fence": 3.0, "active": 7.0, "events_in_order": True},
            {"detect": 2.5, "fence": None, "active": None, "events_in_order": False}]
    results = {"power_loss": {"1": runs}}
    figures.summarize(results)
    s = results["summary"]["1"]
    assert (s["runs"], s["completed"], s["events_in_order"]) == (3, 2, False)
    assert s["detection_median_s"] == 2.25 and s["fencing_p95_s"] == 1.0
    assert s["rebuild_median_s"] == 3.5 and s["total_p95_s"] == 7.0
