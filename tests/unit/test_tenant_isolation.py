"""AggregateMultiTenancyIsolation: hosts in aggregates naming projects take only theirs."""

from __future__ import annotations

import pytest

from atwill.core import scheduler
from atwill.core.aggregate_filters import metadata_values


def host(name: str, *meta: tuple[str, str]) -> scheduler.Host:
    return scheduler.Host(id=name, name=name, vcpus=8, memory_mb=8192, disk_gb=50,
                          aggregate_metadata=metadata_values(meta))


HOSTS = [host("open"), host("open-agg", ("ssd", "true")),
         host("a-only", ("filter_tenant_id", "pa")),
         host("a-or-b", ("filter_tenant_id", "pa, pb")),
         host("c-or-d", ("filter_tenant_id", "pc"), ("filter_tenant_id2", "pd"))]


@pytest.mark.parametrize(("project", "placed"), [
    ("pa", ["open", "open-agg", "a-only", "a-or-b"]),
    ("pb", ["open", "open-agg", "a-or-b"]),
    ("pd", ["open", "open-agg", "c-or-d"]),
    ("pz", ["open", "open-agg"]),
])
def test_each_project_gets_open_hosts_and_its_own(project: str, placed: list[str]) -> None:
    req = scheduler.Request(1, 512, 1, project_id=project)
    assert [h.name for h in scheduler.filter_hosts(HOSTS, req)] == placed


def test_only_isolated_hosts_left_says_which_filter() -> None:
    req = scheduler.Request(1, 512, 1, project_id="pz")
    with pytest.raises(scheduler.NoValidHost,
                       match="AggregateMultiTenancyIsolation eliminated 3 of 3"):
        scheduler.filter_hosts(HOSTS[2:], req)
