"""Migrations run up and down on SQLite and PostgreSQL, and the models match the migrated schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from rapport.db import migrate
from rapport.db.base import Base
from rapport.db.engine import build_engine
from rapport.runtime import Runtime


def test_fresh_database_is_at_head_with_every_table(runtime: Runtime) -> None:
    assert migrate.current_revision(runtime.engine) == migrate.head_revision()
    tables = set(inspect(runtime.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables


def test_models_match_migrations(runtime: Runtime) -> None:
    with runtime.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_down_to_base_and_up_again(fresh_db_url: str) -> None:
    engine = build_engine(fresh_db_url, pool_size=1)
    try:
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert "workspaces" not in inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert migrate.is_up_to_date(engine)
    finally:
        engine.dispose()


def test_audit_log_refuses_update_and_delete(runtime: Runtime) -> None:
    with runtime.sessions() as db:
        db.execute(
            text(
                "INSERT INTO audit_log (actor, action, target_type, target_id, details, created_at) "
                "VALUES ('t', 'x', '', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
        db.commit()
    for stmt in ("UPDATE audit_log SET action = 'y'", "DELETE FROM audit_log"):
        with runtime.sessions() as db:
            try:
                db.execute(text(stmt))
                db.commit()
            except Exception as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{stmt} was allowed")
    with runtime.read_sessions() as db:
        assert db.execute(text("SELECT action FROM audit_log")).scalars().all() == ["x"]
