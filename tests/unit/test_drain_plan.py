"""core/drain_plan: how each instance leaves a drained node, in what order, what is left."""

from __future__ import annotations

from atwill.core import drain_plan as dp
from atwill.core.drain_plan import Attempt, Guest


def guest(name: str, vm_state: str = "active", memory: int = 64, task: str | None = None,
          pci: bool = False, *attempts: Attempt) -> Guest:
    return Guest(id=name + "-id", name=name, vm_state=vm_state, task_state=task,
                 memory_mb=memory, pci=pci, attempts=tuple(attempts))


def actions(decisions: list[dp.Decision]) -> list[tuple[str, str]]:
    return [(d.guest.name, d.action) for d in decisions]


def test_running_guests_live_migrate_stopped_and_pci_ones_go_cold() -> None:
    got = {d.guest.name: (d.action, d.reason) for d in dp.plan([
        guest("run"), guest("paused", "paused"), guest("off", "stopped"),
        guest("gpu", pci=True), guest("broken", "error")], parallel=10)}
    assert got == {"run": (dp.LIVE, ""), "paused": (dp.LIVE, ""),
                   "off": (dp.COLD, "vm_state stopped"), "gpu": (dp.COLD, "PCI passthrough"),
                   "broken": (dp.STUCK, "cannot move an instance in vm_state error")}


def test_a_failed_live_migration_falls_back_to_cold_then_a_failed_cold_one_is_stuck() -> None:
    live_failed = Attempt("live-migration", "failed", "the destination went away")
    d = dp.decide(guest("a", "active", 64, None, False, live_failed))
    assert (d.action, d.reason) == (dp.COLD, "live migration failed: the destination went "
                                             "away")
    cold_failed = Attempt("migration", "error", "no room for the disk")
    d = dp.decide(guest("a", "active", 64, None, False, live_failed, cold_failed))
    assert (d.action, d.reason) == (dp.STUCK, "cold migration failed: no room for the disk")
    # A PCI guest that cannot go cold either is stuck with the refusal's reason.
    d = dp.decide(guest("g", "active", 64, None, True, cold_failed))
    assert d.action == dp.STUCK
    # An errored instance whose live migration failed is stuck, naming the failure.
    d = dp.decide(guest("e", "error", 64, None, False, live_failed))
    assert (d.action, d.reason) == (dp.STUCK, "live migration failed: the destination "
                                              "went away")


def test_moving_guests_wait_finished_cold_ones_are_confirmed_busy_ones_wait() -> None:
    assert dp.decide(guest("a", "active", 64, "migrating", False,
                           Attempt("live-migration", "running"))).action == dp.WAIT
    assert dp.decide(guest("b", "active", 64, "resize_prep", False,
                           Attempt("migration", "pre-migrating"))).action == dp.WAIT
    assert dp.decide(guest("c", "resized", 64, None, False,
                           Attempt("live-migration", "failed"),
                           Attempt("migration", "finished"))).action == dp.CONFIRM
    d = dp.decide(guest("d", "active", 64, "rebooting"))
    assert (d.action, d.reason) == (dp.WAIT, "busy (rebooting)")


def test_at_most_parallel_move_at_once_largest_first_confirms_first() -> None:
    moving = guest("m", "active", 64, "migrating", False, Attempt("live-migration",
                                                                  "running"))
    decisions = dp.plan([guest("small", memory=64), guest("big", memory=4096),
                         guest("mid", memory=512), moving,
                         guest("fin", "resized", 64, None, False,
                               Attempt("migration", "finished"))], parallel=3)
    # m and fin already count against the limit: only one more may start, the biggest.
    assert actions(decisions) == [("fin", dp.CONFIRM), ("big", dp.LIVE), ("mid", dp.WAIT),
                                  ("small", dp.WAIT), ("m", dp.WAIT)]
    assert [d.reason for d in decisions[2:]] == ["queued (live)", "queued (live)",
                                                 "live-migration running"]


def test_progress_counts_what_left_what_moves_and_what_cannot() -> None:
    decisions = dp.plan([guest("a"), guest("b"), guest("x", "error")], parallel=1)
    p = dp.progress(decisions, total=5)
    assert (p.total, p.done, p.moving, p.queued) == (5, 2, ("a",), 1)
    assert p.stuck == (("x", "cannot move an instance in vm_state error"),)
    assert not p.finished
    p = dp.progress(dp.plan([guest("x", "error")], parallel=1), total=3)
    assert p.finished and p.done == 2
    assert dp.progress([], total=3).finished and dp.progress([], 3).done == 3
