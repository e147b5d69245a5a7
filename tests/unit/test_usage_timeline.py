"""A server's billed spans from its lifecycle events: resizes, shelving, stop/start."""

from __future__ import annotations

import datetime as dt

import pytest

from atwill.core import tenant_usage
from atwill.core.usage_timeline import Span, Step, first_launch, hours, spans


def at(hour: float) -> dt.datetime:
    return dt.datetime(2026, 1, 1) + dt.timedelta(hours=hour)


def step(hour: float, state: str, vcpus: int = 1, memory_mb: int = 512,
         disk_gb: int = 10) -> Step:
    return Step(at(hour), state, vcpus, memory_mb, disk_gb)


# create (building) → active → stopped → active → resized to 2 vCPUs → shelved,
# offloaded → unshelved (launched_at moves there, as Nova's) → deleted.
LIFE = [step(0, "building"), step(1, "active"), step(3, "stopped"), step(4, "active"),
        step(5, "resized", 2, 1024, 20), step(6, "active", 2, 1024, 20),
        step(8, "shelved", 2, 1024, 20), step(8.5, "shelved_offloaded", 2, 1024, 20),
        step(11, "active", 2, 1024, 20), step(12, "deleted", 2, 1024, 20)]


def test_a_scripted_life_is_billed_span_by_span() -> None:
    begin = first_launch(at(11), LIFE)  # launched_at, reset by the unshelve
    assert begin == at(1)
    found = spans(begin, at(12), LIFE, (2, 1024, 20), ephemeral_gb=5)
    assert found == [Span(at(1), at(5), 1, 512, 15), Span(at(5), at(8.5), 2, 1024, 25),
                     Span(at(11), at(12), 2, 1024, 25)]
    rec = tenant_usage.Record("i", "n", "p", "f", 2, 1024, 25, "deleted", begin, at(12),
                              tuple(found))
    day = (at(0), at(24))
    assert tenant_usage.hours(rec, *day) == pytest.approx(4 + 3.5 + 1)
    assert tenant_usage.resource_hours(rec, *day) == pytest.approx(
        (4 * 1 + 4.5 * 2, 4 * 512 + 4.5 * 1024, 4 * 15 + 4.5 * 25))
    # A window cuts the spans: [4.5, 11.5) holds 0.5 h at 1 vCPU, 3.5 h + 0.5 h at 2.
    assert tenant_usage.resource_hours(rec, at(4.5), at(11.5))[0] == pytest.approx(
        0.5 + 2 * 4)


def test_a_living_server_runs_to_the_window_and_a_shelved_one_does_not() -> None:
    life = LIFE[:-1]
    found = spans(at(1), None, life, (2, 1024, 20))
    assert found[-1] == Span(at(11), None, 2, 1024, 20)
    assert hours(found[-1], at(0), at(20)) == pytest.approx(9)
    offloaded = spans(at(1), None, LIFE[:8], (2, 1024, 20))
    assert offloaded[-1].stop == at(8.5)


def test_without_events_one_span_at_the_present_size() -> None:
    assert spans(at(2), at(3), [], (4, 2048, 40), 1) == [Span(at(2), at(3), 4, 2048, 41)]
    assert first_launch(at(2), []) == at(2)
    rec = tenant_usage.Record("i", "n", "p", "f", 4, 2048, 40, "active", at(2), None)
    assert tenant_usage.resource_hours(rec, at(0), at(4)) == pytest.approx((8, 4096, 80))


def test_events_before_the_recorded_launch_give_the_size() -> None:
    """Rows whose launch was recorded before their events (older rows, imports): the
    latest event at or before the launch, else the first, gives the starting size."""
    later = [step(30, "active", 8, 8192, 80)]
    assert spans(at(0), at(10), later, (8, 8192, 80)) == [Span(at(0), at(10), 8, 8192, 80)]
    assert first_launch(at(0), later) == at(0)
