"""The store on both engines: migrations, constraints, idempotent bootstrap."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from atwill import config
from atwill.controller.bootstrap import bootstrap
from atwill.controller.context import Controller
from atwill.controller.db.models import Base, Domain, Project, Role, RoleAssignment, User
from atwill.controller.db.session import Database, alembic_config, is_initialised, migrate


def test_migrations_match_models_and_downgrade(db: Database) -> None:
    assert not is_initialised(db.engine)
    migrate(db.engine)
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    url = db.engine.url.render_as_string(hide_password=False)
    command.downgrade(alembic_config(url), "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    migrate(db.engine)
    migrate(db.engine)  # a no-op the second time
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())


def test_constraints(db: Database) -> None:
    migrate(db.engine)
    with db.session() as s:
        s.add(Domain(id="default", name="Default"))
        s.add(Project(id="p1", name="one", domain_id="default"))
        s.add(User(id="u1", name="alice", domain_id="default"))
        s.add(Role(id="r1", name="member"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Project(name="one", domain_id="default"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Project(name="two", domain_id="no-such-domain"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(RoleAssignment(user_id="nobody", project_id="p1", role_id="r1"))
    with db.session() as s:
        s.add(RoleAssignment(user_id="u1", project_id="p1", role_id="r1"))
    with db.session() as s:
        s.delete(s.get(User, "u1"))
    with db.session() as s:
        assert s.scalars(select(RoleAssignment)).all() == []


def test_bootstrap_is_idempotent(db: Database, tmp_path: Path) -> None:
    settings = config.load(tmp_path, port=1234, database_url=db.url)
    ctl = Controller(settings=settings, db=db, keys=None)  # type: ignore[arg-type]
    first = bootstrap(ctl, "pw")
    assert "created user admin" in first and "created the database schema" in first
    assert bootstrap(ctl, "pw") == []
    moved = Controller(settings=config.load(tmp_path, port=4321, database_url=db.url),
                       db=db, keys=None)  # type: ignore[arg-type]
    changes = bootstrap(moved, "pw")
    assert changes and all(c.startswith("moved") for c in changes)
