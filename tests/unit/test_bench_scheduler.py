"""`atwill bench scheduler`, small: every placement lands and no node is overbooked, with
one process and with two racing for the same nodes (both engines)."""

from __future__ import annotations

import pytest

from atwill.bench import scheduler
from tests.conftest import postgres_url


@pytest.mark.parametrize("workers", [1, 2])
def test_small_bench_places_everything_without_overbooking(engine: str, workers: int,
                                                           capsys: pytest.CaptureFixture
                                                           ) -> None:
    url = postgres_url() if engine == "postgres" else None
    if engine == "postgres" and not url:
        pytest.skip("ATWILL_TEST_PG_URL is not set")
    # 3 nodes of 6 such servers each (RAM): 12 of 18 slots, so the claims collide.
    results = scheduler.main(nodes=3, placements=12, database_url=url, workers=workers)
    assert (results["placed"], results["overbooked_nodes"], results["workers"]) == (
        12, 0, workers)
    assert results["engine"] == ("postgresql" if url else "sqlite")
    assert "placements_per_s" in capsys.readouterr().out
