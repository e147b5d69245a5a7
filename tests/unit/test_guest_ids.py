from atwill.core import guest_ids


def test_ids_are_stable_in_block_and_probe_past_taken() -> None:
    first = guest_ids.pick("instance-a", set())
    assert guest_ids.in_block(first)
    assert guest_ids.pick("instance-a", set()) == first
    assert guest_ids.pick("instance-a", {first}) != first
    assert guest_ids.in_block(guest_ids.pick("instance-a", {first}))
    assert guest_ids.pick("instance-b", set()) != first
    assert not guest_ids.in_block(0) and not guest_ids.in_block(65534)

