"""Node health from heartbeat age: fast on a LAN, quiet on a lossy, slow link."""

from __future__ import annotations

import random

from atwill.core import ha_health
from atwill.core.ha_health import DOWN, SUSPECT, UP, Thresholds

T = Thresholds()
POLL = 0.2  # the monitor's period (Settings.ha_poll_interval)


def _delivery(rng: random.Random, one_way: float, loss: float, rto: float) -> float:
    """One TCP segment's delivery time: each loss costs a retransmission timeout, doubling."""
    delay, wait = one_way, rto
    while rng.random() < loss:
        delay += wait
        wait *= 2
    return delay


def _worst_silence(gaps: list[float]) -> tuple[float, bool]:
    """Run the monitor over a trace of gaps: the peak, and whether it ever said down."""
    peak, went_down = 0.0, False
    for gap in gaps:
        # The monitor looks every POLL seconds while the node is silent.
        age = POLL
        while age < gap:
            went_down |= ha_health.classify(age, peak, T) == DOWN
            age += POLL
        peak = ha_health.next_peak(peak, gap, T)
    return peak, went_down


def test_lossy_slow_link_rarely_goes_down() -> None:
    # 5 % loss each way, 300 ms RTT: a beat is a request and an answer, then a 1 s wait.
    # A lost segment waits a retransmission timeout (0.5 s, doubling), so a few gaps in a
    # thousand exceed the LAN floor: a fixed 2.6 s threshold would say down every ~7 min.
    rng = random.Random(4)
    gaps = [_delivery(rng, 0.15, 0.05, 0.5) + 1.0 + _delivery(rng, 0.15, 0.05, 0.5)
            for _ in range(100_000)]  # about 36 hours of beats
    fixed = sum(1 for g in gaps if g > T.down_after)
    assert fixed > 100
    peak, false_downs = 0.0, 0
    for gap in gaps:
        false_downs += gap > ha_health.down_threshold(peak, T)
        peak = ha_health.next_peak(peak, gap, T)
    assert false_downs <= 2  # fewer than one a day (a fourfold loss of one segment)


def test_powered_off_lan_node_is_down_within_3s() -> None:
    rng = random.Random(5)
    peak, went_down = _worst_silence([1.0 + rng.uniform(0, 0.01) for _ in range(2000)])
    assert not went_down
    # Worst case: the last beat arrived just before the power cut.
    age = 0.0
    while ha_health.classify(age, peak, T) != DOWN:
        age += POLL
    assert age <= 3.0
    assert ha_health.classify(1.8, peak, T) == SUSPECT
    assert ha_health.classify(0.9, peak, T) == UP


def test_threshold_is_bounded_and_outages_are_not_learnt() -> None:
    assert ha_health.down_threshold(100.0, T) == T.down_ceiling
    assert ha_health.next_peak(1.0, 30.0, T) < 1.0  # an outage's gap is not jitter
    assert ha_health.next_peak(0.0, 8.0, T) == 0.0  # nor the wait before the first beat
    assert ha_health.next_peak(1.0, 2.4, T) == 2.4
    assert ha_health.next_peak(1.0, None, T) < 1.0


def test_host_status_as_nova() -> None:
    assert ha_health.host_status(False, True, True, False) == "UP"
    assert ha_health.host_status(False, True, False, False) == "UNKNOWN"
    assert ha_health.host_status(False, False, True, False) == "MAINTENANCE"
    assert ha_health.host_status(True, False, True, False) == "DOWN"
    assert ha_health.host_status(False, True, False, True) == "DOWN"


def test_ha_enabled_is_an_opt_out() -> None:
    assert ha_health.ha_enabled({})
    assert ha_health.ha_enabled({"HA_Enabled": "True"})
    assert not ha_health.ha_enabled({"HA_Enabled": "false"})
    assert not ha_health.ha_enabled({"HA_Enabled": "False"})
