from atwill.core import guest_ids


def test_ids_are_stable_in_block_and_probe_past_taken() -> None:
    first = guest_ids.pick("instance-a", set())
    assert guest_ids.in_block(first)
    assert guest_ids.pick("instance-a", set()) == first
    assert guest_ids.pick("instance-a", {first}) != first
    assert guest_ids.in_block(guest_ids.pick("instance-a", {first}))
    assert guest_ids.pick("instance-b", set()) != first
    assert not guest_ids.in_block(0) and not guest_ids.in_block(65534)



def test_the_block_avoids_other_ranges_and_negative_ids() -> None:
    last = guest_ids.BASE + guest_ids.SPAN - 1
    assert guest_ids.BASE > 2000200000  # SSSD's default and systemd-nspawn's ranges
    assert last < 2**31  # printed as negative by some tools above
    first = guest_ids.pick("k", set())
    assert guest_ids.pick("k", lambda uid: uid == first) != first
