"""Fixtures shared by every tier."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from atwill.controller.db.session import Database
from atwill.devcloud import fresh_database
from tests.cloud import Cloud

ENGINES = ["sqlite", "postgres"]
# Every API module runs on SQLite, the default engine. PostgreSQL runs the modules whose
# behaviour depends on the engine: input limits (its column types refuse what SQLite
# stores), claims, quotas and locks under concurrency, the HA leader's advisory lock,
# identity, tokens and lockout, address allocation. Running all of them on both would
# double the tier's time; ATWILL_TEST_ALL_ENGINES=1 does it anyway.
POSTGRES_MODULES = frozenset({
    "test_bad_input_edge", "test_compute_bad_input", "test_identity_input",
    "test_network_bad_input", "test_image_bodies", "test_servers", "test_cluster",
    "test_ha_evacuate", "test_ha_restart", "test_identity_lockout",
    "test_identity_tokens",
    "test_network_ipam", "test_network_bulk", "test_tenant_isolation", "test_volume_api",
    "test_volume_services", "test_volume_capacity", "test_volume_review_fixes",
    "test_compute_aggregates", "test_network_security", "test_usage_events",
    "test_join_aggregates", "test_dashboard_session",
    "test_image_upload",
    "test_controller_workers", "test_server_group_race", "test_controller_registry",
    "test_tenant_usage", "test_aggregate_scheduling", "test_metrics", "test_heartbeat_lane",
    "test_volume_lock_order", "test_volume_storage_gone", "test_heartbeat_lean_changes",
    "test_volume_place_nodes", "test_heartbeat_order", "test_volume_settle",
    "test_server_address_race",
})  # test_usage_{events_restart,shelve,resize}: the figures are engine-free (core/usage_timeline)
# test_ha_lease (65 s a run, its waits the lease's): the lease arithmetic is core/; what is
# engine-bound in it (timestamps, the evacuation's claims) test_ha_restart/_evacuate cover.
#
# Per test, the same rule: a test of a module run on PostgreSQL (any tier) may be marked
# @pytest.mark.engine_free("why"), and then runs on SQLite only, when what it checks does
# not depend on the engine: no input the column types judge, no claim, lock, concurrent
# write or timestamp arithmetic; only policy, a process's own behaviour (agent, CLI), or
# what a PostgreSQL run of another test already covers. The reason is required and says
# which; the module stays in POSTGRES_MODULES for its engine-bound tests.
# ATWILL_TEST_ALL_ENGINES=1 runs these on PostgreSQL too.
ENGINE_FREE = "engine_free"


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A TERM (scripts/test stopping the lab tier it runs in the background, a CI timeout)
    # ends the run as Ctrl-C does: the fixtures' teardowns remove what the tests made.
    signal.signal(signal.SIGTERM, _terminated)
    config.addinivalue_line(
        "markers", f"{ENGINE_FREE}(reason): runs on SQLite only, what it checks does not "
        "depend on the database engine (tests/conftest.py says when)")


def postgres_url() -> str | None:
    return os.environ.get("ATWILL_TEST_PG_URL")


def fresh_postgres() -> Iterator[Database]:
    """A Database on a new, later dropped, PostgreSQL database (skips without one)."""
    admin_url = postgres_url()
    if not admin_url:
        pytest.skip("ATWILL_TEST_PG_URL is not set (the test command starts PostgreSQL)")
    with fresh_database(admin_url) as url:
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def fresh_database_url(engine: str) -> Iterator[str | None]:
    """None for SQLite in the state directory; a new, later dropped, PostgreSQL database."""
    if engine == "sqlite":
        yield None
        return
    admin_url = postgres_url()
    if not admin_url:
        pytest.skip("ATWILL_TEST_PG_URL is not set (the test command starts PostgreSQL)")
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def database_url(engine: str) -> Iterator[str | None]:
    yield from fresh_database_url(engine)


class SharedClouds:
    """The session's controllers, one per engine, each started when first asked for.

    They hang off no parametrized fixture: pytest tears a session fixture down whenever
    the `engine` parameter flips, and under xdist's loadscope it flips twice per module
    run on both engines (SQLite, PostgreSQL, then SQLite for the next module), which
    restarted the shared controller each time.
    """

    def __init__(self) -> None:
        self.made: dict[str, Cloud] = {}
        self.failed: dict[str, Exception] = {}
        self.databases: list[Iterator[str | None]] = []

    def get(self, engine: str) -> Cloud:
        if engine in self.failed:
            raise self.failed[engine]
        if engine not in self.made:
            database = fresh_database_url(engine)
            url = next(database)  # skips the test when PostgreSQL is not there
            self.databases.append(database)
            instance = Cloud(url)
            try:
                instance.init()
                # Its test nodes fall silent between tests: HA must not evacuate their
                # servers under other tests (test_ha_evacuate has its own with it on).
                instance.configure(ha_auto_evacuate=False)
                instance.start()
            except Exception as error:
                instance.destroy()
                self.failed[engine] = error
                raise
            self.made[engine] = instance
        return self.made[engine]

    def close(self) -> None:
        for instance in self.made.values():
            instance.destroy()
        for database in self.databases:
            database.close()  # drops a PostgreSQL database


@pytest.fixture(scope="session")
def shared_clouds() -> Iterator[SharedClouds]:
    clouds = SharedClouds()
    try:
        yield clouds
    finally:
        clouds.close()


@pytest.fixture(scope="session")
def cloud(engine: str, shared_clouds: SharedClouds) -> Cloud:
    """A running controller for a whole session, per database engine."""
    return shared_clouds.get(engine)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the PostgreSQL runs of API modules outside POSTGRES_MODULES, and of the
    tests marked engine_free (each with its reason)."""
    for item in items:
        marker = item.get_closest_marker(ENGINE_FREE)
        if marker is not None and not (marker.args and str(marker.args[0]).strip()):
            raise pytest.UsageError(f"{item.nodeid}: {ENGINE_FREE} needs its reason")
    if os.environ.get("ATWILL_TEST_ALL_ENGINES") == "1":
        return
    kept, dropped = [], []
    for item in items:
        spec = getattr(item, "callspec", None)
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        on_postgres = spec is not None and spec.params.get("engine") == "postgres"
        api = "/tests/api/" in str(item.fspath)
        engine_free = item.get_closest_marker(ENGINE_FREE) is not None
        (dropped if on_postgres and (engine_free or (api and module not in POSTGRES_MODULES))
         else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

