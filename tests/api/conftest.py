from collections.abc import Iterator

import pytest

from atwill.controller.service import CONTENTION_LOG


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/api/" in str(item.fspath):
            item.add_marker(pytest.mark.api)


@pytest.fixture(autouse=True)
def _no_database_contention(request: pytest.FixtureRequest) -> Iterator[None]:
    """A deadlock, serialization failure or lock timeout in the shared controller during a
    test fails it: the client sees a 409 it may retry, but it is a lock-order bug."""
    if "cloud" not in request.fixturenames:
        yield
        return
    path = request.getfixturevalue("cloud").state_dir / "controller.log"
    start = path.stat().st_size if path.exists() else 0
    yield
    with path.open("rb") as log:
        log.seek(start)
        seen = [line for line in log.read().decode(errors="replace").splitlines()
                if " ERROR atwill.api " in line and CONTENTION_LOG in line]
    if seen:
        pytest.fail("the controller logged database contention during this test:\n"
                    + "\n".join(seen[:5]), pytrace=False)
