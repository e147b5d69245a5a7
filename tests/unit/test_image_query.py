"""Image list parameters: filters, sorting and limits."""

import datetime as dt

import pytest

from atwill.core import imagequery
from atwill.core.errors import BadRequest


def parse(query: str) -> imagequery.ImageQuery:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p]
    return imagequery.parse(pairs)  # type: ignore[arg-type]


def test_defaults() -> None:
    q = parse("")
    assert (q.visibility, q.member_status, q.os_hidden, q.limit) == (None, "accepted", False, 25)
    assert q.sort == [("created_at", "desc"), ("id", "desc")]


def test_filters() -> None:
    q = parse("id=in:a,b&name=x&status=active&os_hidden=true&tag=t1&tag=t2&size_min=5"
              "&hw_video_model=qxl&visibility=all&member_status=all&limit=2000&marker=m"
              "&created_at=gte:2024-01-01T00:00:00Z&protected=false")
    assert q.exact == {"id": ["a", "b"], "name": ["x"], "status": ["active"]}
    assert q.os_hidden is True and q.protected is False
    assert q.tags == ["t1", "t2"] and q.size_min == 5 and q.size_max is None
    assert q.properties == {"hw_video_model": "qxl"}
    assert (q.visibility, q.member_status, q.limit, q.marker) == ("all", "all", 1000, "m")
    assert q.times == [("created_at", "gte", dt.datetime(2024, 1, 1))]


def test_sort_forms() -> None:
    assert parse("sort=name:asc,size").sort == [("name", "asc"), ("size", "desc"),
                                                ("id", "desc")]
    assert parse("sort_key=name&sort_key=id&sort_dir=asc").sort == [("name", "asc"),
                                                                    ("id", "asc")]
    assert parse("sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc").sort == [
        ("name", "asc"), ("size", "desc"), ("id", "desc")]


@pytest.mark.parametrize("query", [
    "limit=x", "limit=0", "limit=-1", "size_min=big", "visibility=everyone",
    "member_status=maybe", "os_hidden=perhaps", "sort=bogus:asc", "sort=name:up",
    "sort=name&sort_key=id", "sort_key=name&sort_key=id&sort_dir=asc&sort_dir=asc&sort_dir=asc",
    "sort=name,name", "id=in:", "created_at=gte:yesterday", "protected=2",
])
def test_bad(query: str) -> None:
    with pytest.raises(BadRequest):
        parse(query)
