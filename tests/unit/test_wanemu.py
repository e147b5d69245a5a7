"""The WAN emulator's pure logic: delay and loss parsing, due times, order, loss, learning."""

from __future__ import annotations

import random

import pytest

from atwill.lab.wanswitch import Link, Switch, Wan, parse_delay, parse_loss

A, B, C = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b", b"\x02\x00\x00\x00\x00\x0c"
BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, body: bytes = b"") -> bytes:
    return dst + src + b"\x08\x00" + body


def wan(**links: Link) -> Wan:
    return Wan(links, rng=random.Random(7))


@pytest.mark.parametrize(("text", "seconds"), [
    ("40ms", 0.04), ("0.1s", 0.1), ("500us", 0.0005), ("2 msec", 0.002), (None, 0.0), ("", 0.0),
])
def test_parse_delay(text: str | None, seconds: float) -> None:
    assert parse_delay(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["40", "fast", "-1ms", "40ms 10ms"])
def test_parse_delay_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="delay"):
        parse_delay(text)


@pytest.mark.parametrize(("text", "probability"), [
    ("1%", 0.01), ("0.5%", 0.005), ("20", 0.2), ("100%", 1.0), (None, 0.0),
])
def test_parse_loss(text: str | None, probability: float) -> None:
    assert parse_loss(text) == pytest.approx(probability)


@pytest.mark.parametrize("text", ["101%", "lots", "-1%"])
def test_parse_loss_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError, match="loss"):
        parse_loss(text)


def test_switch_floods_unknown_and_group_addresses_then_learns() -> None:
    switch = Switch()
    ports = ["a", "b", "c"]
    assert switch.outputs(B, "a", ports) == ["b", "c"]
    switch.learn(B, "b")
    assert switch.outputs(B, "a", ports) == ["b"]
    assert switch.outputs(B, "b", ports) == [], "never back out of the port it came in"
    assert switch.outputs(BROADCAST, "a", ports) == ["b", "c"]
    switch.learn(BROADCAST, "c")
    assert BROADCAST not in switch.table, "a group address is never a source"
    switch.forget("b")
    assert switch.outputs(B, "a", ports) == ["b", "c"]


def test_a_frame_waits_for_the_delay_of_both_access_links() -> None:
    w = wan(a=Link(delay=0.010), b=Link(delay=0.020))
    w.receive(1.0, "b", frame(A, B))  # b learns; its frame floods to a
    w.pop_due(2.0)
    w.receive(5.0, "a", frame(B, A, b"x"))
    assert w.next_due() == pytest.approx(5.030)
    assert w.pop_due(5.029) == []
    assert w.pop_due(5.030) == [("b", frame(B, A, b"x"))]
    assert w.queued() == 0


def test_an_offset_skips_a_header_before_the_ethernet_frame() -> None:
    w = wan(a=Link(), b=Link())
    w.receive(0.0, "a", b"HDR" + frame(B, A), offset=3)
    assert w.switch.table == {A: "a"}
    assert w.pop_due(0.0) == [("b", b"HDR" + frame(B, A))]


def test_frames_between_two_ports_never_overtake_each_other() -> None:
    w = wan(a=Link(delay=0.100), b=Link(), c=Link())
    w.switch.learn(B, "b")
    w.receive(0.0, "a", frame(B, A, b"1"))
    w.configure({"a": Link(), "b": Link(), "c": Link()})  # the delay drops while it waits
    w.receive(0.001, "a", frame(B, A, b"2"))
    w.receive(0.002, "c", frame(B, C, b"3"))
    # c's frame does not wait behind a's: order is per pair of ports, not per port.
    assert [f[-1:] for _, f in w.pop_due(0.050)] == [b"3"]
    assert [f[-1:] for _, f in w.pop_due(0.100)] == [b"1", b"2"]


def test_loss_is_drawn_per_link_with_the_given_random_source() -> None:
    w = wan(a=Link(loss=0.2), b=Link())
    w.switch.learn(B, "b")
    for _ in range(10000):
        w.receive(0.0, "a", frame(B, A))
    lost = w.counters["a"].lost
    assert 1800 < lost < 2200
    assert len(w.pop_due(0.0)) == 10000 - lost
    again = wan(a=Link(loss=0.2), b=Link())
    again.switch.learn(B, "b")
    for _ in range(10000):
        again.receive(0.0, "a", frame(B, A))
    assert again.counters["a"].lost == lost, "the same seed drops the same frames"


def test_loss_of_both_links_combines() -> None:
    w = wan(a=Link(loss=0.5), b=Link(loss=0.5))
    w.switch.learn(B, "b")
    for _ in range(10000):
        w.receive(0.0, "a", frame(B, A))
    delivered = len(w.pop_due(0.0))
    assert 2300 < delivered < 2700  # (1 - 0.5) x (1 - 0.5)
    assert w.counters["a"].lost + w.counters["b"].lost == 10000 - delivered


def test_the_queue_is_bounded_per_output_port_and_overflow_counted() -> None:
    w = Wan({"a": Link(delay=1.0), "b": Link()}, limit=3)
    w.switch.learn(B, "b")
    for _ in range(5):
        w.receive(0.0, "a", frame(B, A))
    assert w.queued() == 3
    assert w.counters["b"].overflow == 2
    assert w.counters["a"].rx == 5


def test_removing_a_port_drops_its_frames_and_addresses() -> None:
    w = wan(a=Link(), b=Link(delay=1.0), c=Link())
    w.switch.learn(A, "a")
    w.switch.learn(B, "b")
    w.receive(0.0, "a", frame(B, A))
    w.receive(0.0, "c", frame(A, C))
    w.configure({"a": Link(), "c": Link()})
    assert B not in w.switch.table and "b" not in w.counters
    assert [port for port, _ in w.pop_due(2.0)] == ["a"]
    w.receive(2.0, "b", frame(A, B))
    assert w.queued() == 0, "frames from a port no longer configured are ignored"


def test_sent_counts_success_and_errors() -> None:
    w = wan(a=Link())
    w.sent("a", True)
    w.sent("a", False)
    w.sent("gone", True)
    assert (w.counters["a"].tx, w.counters["a"].errors) == (1, 1)
