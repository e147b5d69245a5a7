"""bench creates' figures from its timestamps (pure: no I/O, unit-tested)."""

from __future__ import annotations

from typing import Any


def quantile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)


def sustained(times: list[float], trim: float = 0.1) -> float | None:
    """Completions per second over the middle of a run: between the completion at the
    `trim` fraction and the one at 1 - trim (the ramp-up and the tail left out); None when
    fewer than 3 completions or they all fall at one instant."""
    ordered = sorted(times)
    if len(ordered) < 3:
        return None
    first = int(trim * (len(ordered) - 1))
    last = len(ordered) - 1 - first
    span = ordered[last] - ordered[first]
    return round((last - first) / span, 2) if span > 0 else None


def figures(started: float, posts: list[tuple[float, float, str | None]],
            active: dict[str, float], errors: list[str]) -> dict[str, Any]:
    """posts: (sent, answered, server id or None) per POST (monotonic seconds); active:
    server id -> when it was first seen ACTIVE; started: the run's start."""
    accepted = [(s, a, i) for s, a, i in posts if i is not None]
    ends = [a for _, a, _ in accepted]
    reached = [active[i] - s for s, _, i in accepted if i in active]
    accept_span = (max(ends) - started) if ends else 0.0
    active_times = [active[i] for _, _, i in accepted if i in active]
    active_span = (max(active_times) - started) if active_times else 0.0
    return {
        "posts": len(posts), "accepted": len(accepted), "active": len(reached),
        "errors": len(errors) + len(accepted) - len(reached),
        "accepted_per_s": round(len(accepted) / accept_span, 2) if accept_span else None,
        "active_per_s": round(len(reached) / active_span, 2) if active_span else None,
        "active_per_s_steady": sustained(active_times),
        "post_p50_ms": _ms(quantile([a - s for s, a, _ in posts], 0.5)),
        "post_p99_ms": _ms(quantile([a - s for s, a, _ in posts], 0.99)),
        "to_active_p50_ms": _ms(quantile(reached, 0.5)),
        "to_active_p99_ms": _ms(quantile(reached, 0.99)),
    }
