"""Range header parsing for image downloads."""

import pytest

from atwill.core.ranges import Unsatisfiable, parse_range


@pytest.mark.parametrize(("header", "expected"), [
    (None, None), ("bytes=0-9", (0, 9)), ("bytes=10-", (10, 99)), ("bytes=-10", (90, 99)),
    ("bytes=90-500", (90, 99)), ("bytes=-500", (0, 99)), (" bytes = 5-5", (5, 5)),
])
def test_satisfiable(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", [
    "bytes=100-", "bytes=200-300", "bytes=-0", "bytes=5-4", "bytes=0-1,5-6", "items=0-1",
    "bytes=", "bytes=-", "bytes=a-b", "bytes=1", "0-1",
])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


def test_empty_image_has_no_range() -> None:
    with pytest.raises(Unsatisfiable):
        parse_range("bytes=0-", 0)
