from atwill.core.ratelimit import TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refused_with_the_wait() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token at 2/s
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_sources_are_separate() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, clock=Clock())
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_refill_is_capped_at_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 1000
    assert [buckets.take("a") for _ in range(3)][-1] > 0


def test_memory_is_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=10, clock=Clock())
    for i in range(100):
        buckets.take(f"10.0.0.{i}")
    assert len(buckets._buckets) == 10


def test_zero_rate_is_off() -> None:
    buckets = TokenBuckets(rate=0, burst=1, clock=Clock())
    assert all(buckets.take("a") == 0.0 for _ in range(100))


def test_ipv6_sources_share_their_64() -> None:
    from atwill.core.ratelimit import source_key

    assert source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9")
    assert source_key("2001:db8:1:2::1") != source_key("2001:db8:1:3::1")
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("testclient") == "testclient"


def test_slots_bound_concurrent_checks() -> None:
    from atwill.core.ratelimit import Slots

    slots = Slots(2, wait=0.01)
    with slots.held() as first, slots.held() as second, slots.held() as third:
        assert (first, second, third) == (True, True, False)
    with slots.held() as again:
        assert again
