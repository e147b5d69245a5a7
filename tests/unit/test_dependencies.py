"""Packaging: what src/ imports is declared, and PostgreSQL's driver is an extra."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from atwill.controller.db.session import make_engine

ROOT = Path(__file__).resolve().parents[2]
# Imported only by the test harness, benchmarks and the lab (its virtual BMC), which need
# the test extra anyway; and psycopg by `bench fleet`, which runs on PostgreSQL and so
# needs the postgres extra (the controller itself reaches it through SQLAlchemy's URL);
# osc_lib (python-openstackclient's) by the harness's quick polling (devcloud_quickpoll).
FROM_TEST_EXTRA = {"openstack", "osc_lib", "pyghmi", "psycopg"}


def declared(requirements: list[str]) -> set[str]:
    names = set()
    for req in requirements:
        name = req.split(";")[0].split("[")[0]
        for sep in "<>=!~ ":
            name = name.split(sep)[0]
        names.add(name.strip().lower().replace("_", "-"))
    return names


def imported_top_levels() -> set[str]:
    found = set()
    for path in (ROOT / "src" / "atwill").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"atwill", "__future__"}


def test_every_direct_import_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = declared(project["dependencies"])
    owners = packages_distributions()
    missing = []
    for module in sorted(imported_top_levels() - FROM_TEST_EXTRA):
        dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not dists & required:
            missing.append(f"{module} ({', '.join(sorted(dists))})")
    assert missing == []


def test_postgres_driver_is_an_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "psycopg" not in declared(project["dependencies"])
    assert "psycopg" in declared(project["optional-dependencies"]["postgres"])
    assert "'.[test,postgres]'" in (ROOT / "scripts" / "install").read_text()


@pytest.mark.parametrize("url", ["postgresql://u:p@127.0.0.1/db",
                                 "postgresql+psycopg://u:p@127.0.0.1/db"])
def test_postgres_without_its_driver_says_so(monkeypatch: pytest.MonkeyPatch, url: str
                                             ) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if atwill[postgres] were absent
    with pytest.raises(ValueError) as raised:
        make_engine(url)
    assert str(raised.value) == ("the database URL needs the postgresql driver 'psycopg', "
                                 "which is not installed (pip install 'atwill[postgres]')")


def test_a_plain_postgresql_url_uses_the_installed_driver() -> None:
    engine = make_engine("postgresql://u:p@127.0.0.1/db")  # no connection is made yet
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()
