"""The openstack CLI plugin: --os-scope / --scope / OS_SCOPE become an X-Scope header."""

from __future__ import annotations

import argparse
import os
from typing import Any

import pytest
from keystoneauth1 import session

from atwill import scope_plugin


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The headers of each keystoneauth request, recorded instead of sent."""
    calls: list[dict[str, Any]] = []

    def record(self: Any, url: str, method: str, **kwargs: Any) -> None:
        calls.append(dict(kwargs.get("headers") or {}))

    monkeypatch.setattr(session.Session, "request", record)
    monkeypatch.setitem(scope_plugin._scope, "value", None)
    monkeypatch.delenv("OS_SCOPE", raising=False)
    return calls


def parser() -> argparse.ArgumentParser:
    return scope_plugin.build_option_parser(argparse.ArgumentParser())


def test_option_sends_the_header(sent: list[dict[str, Any]]) -> None:
    args = parser().parse_args(["--os-scope", '{"image": "CloudTwo"}'])
    assert args.os_scope == {"image": "CloudTwo"}  # never a str: openstack.config formats
    session.Session().request("https://cloud/image/v2/images", "GET",
                              headers={"Accept": "application/json"})
    assert sent == [{"Accept": "application/json", "X-Scope": '{"image":"CloudTwo"}'}]


def test_scope_alias_and_environment(sent: list[dict[str, Any]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    parser().parse_args(["--scope", '{"compute": "CloudOne"}'])
    session.Session().request("https://cloud/", "GET")
    monkeypatch.setenv("OS_SCOPE", '{"image": "Env"}')
    assert parser().parse_args([]).os_scope is None
    assert "OS_SCOPE" not in os.environ  # consumed: openstack.config would format it
    session.Session().request("https://cloud/", "GET")
    assert [h["X-Scope"] for h in sent] == ['{"compute":"CloudOne"}', '{"image":"Env"}']


def test_no_scope_no_header(sent: list[dict[str, Any]]) -> None:
    parser().parse_args([])
    session.Session().request("https://cloud/", "GET")
    assert sent == [{}]


@pytest.mark.parametrize("bad", ["{nope", '["image"]', '{"image": 1}'])
def test_bad_scope_is_refused(sent: list[dict[str, Any]], bad: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--os-scope", bad])
    assert "--os-scope" in capsys.readouterr().err


def test_the_stock_cli_finds_the_plugin_by_its_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [e for e in entry_points(group="openstack.cli.extension")
                if e.name == "atwill_scope"]
    assert found.load() is scope_plugin
