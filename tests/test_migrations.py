"""Migrations run up and down on SQLite and PostgreSQL, and the models match the migrated schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, insert, inspect, select, text

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


def _insert_workspace(conn: Any, workspaces: Table, now: datetime) -> int:
    """A workspace row through the table as reflected at an older revision; its id."""
    return int(
        conn.execute(
            insert(workspaces)
            .values(name="W", slug="w", timezone="UTC", default_region="GB", settings={}, created_at=now)
            .returning(workspaces.c.id)
        ).scalar_one()
    )


def test_scores_move_to_their_table_and_back(fresh_db_url: str) -> None:
    """0008 moves the score keys out of ``profiles.computed`` into ``profile_scores``; its downgrade merges them
    back. Other computed values (a boolean, a nested object, a string that looks like a number) are kept."""
    engine = build_engine(fresh_db_url, pool_size=1)
    others = {"total_orders": 3, "vip": True, "nested": {"k": [1, None]}, "code": "007", "gone": None}
    scores = {"rfm_r": 5, "rfm_segment": "champions", "p_alive": 0.25, "propensity_purchase_30d": 0.5}
    try:
        migrate.downgrade(engine, "0007")
        with engine.begin() as conn:
            meta = MetaData()
            workspaces = Table("workspaces", meta, autoload_with=conn)
            profiles = Table("profiles", meta, autoload_with=conn)
            now = datetime(2026, 11, 23, tzinfo=UTC)
            ws = _insert_workspace(conn, workspaces, now)
            row = {"workspace_id": ws, "traits": {}, "trait_times": {}, "created_at": now, "updated_at": now}
            scored, plain = (
                conn.execute(
                    insert(profiles).values(**row, computed=computed).returning(profiles.c.id)
                ).scalar_one()
                for computed in ({**others, **scores}, {"total_orders": 1})
            )
        migrate.upgrade(engine, "0008")
        with engine.connect() as conn:
            meta = MetaData()
            held = Table("profile_scores", meta, autoload_with=conn)
            profiles = Table("profiles", meta, autoload_with=conn)
            assert conn.execute(select(held.c.profile_id, held.c.workspace_id, held.c.scores)).all() == [
                (scored, ws, scores)
            ]
            computed = dict(conn.execute(select(profiles.c.id, profiles.c.computed)).tuples().all())
            assert computed == {scored: others, plain: {"total_orders": 1}}
        migrate.downgrade(engine, "0007")
        with engine.connect() as conn:
            profiles = Table("profiles", MetaData(), autoload_with=conn)
            computed = dict(conn.execute(select(profiles.c.id, profiles.c.computed)).tuples().all())
            assert computed == {scored: {**others, **scores}, plain: {"total_orders": 1}}
            assert "profile_scores" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


def _event_index_names(conn: Any) -> set[str]:
    if conn.dialect.name == "sqlite":  # the expression index is not reflected on SQLite
        rows = conn.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
        )
    else:
        rows = conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'events'"))
    return {name for name in rows.scalars() if not name.startswith("sqlite_autoindex")}


def test_events_lose_the_workspace_key_and_keep_rows_and_indexes(fresh_db_url: str) -> None:
    """0016 drops ``events.workspace_id``'s foreign key (on SQLite by rebuilding the table): every row and
    every index, the expression index included, is still there; the downgrade restores the key."""
    engine = build_engine(fresh_db_url, pool_size=1)
    now = datetime(2026, 11, 24, tzinfo=UTC)
    try:
        migrate.downgrade(engine, "0015")
        with engine.begin() as conn:
            meta = MetaData()
            workspaces = Table("workspaces", meta, autoload_with=conn)
            events = Table("events", meta, autoload_with=conn)
            ws = _insert_workspace(conn, workspaces, now)
            base = {"workspace_id": ws, "type": "track", "channel": "web", "timestamp": now, "received_at": now,
                    "traits": {}, "context": {}, "extra": {}, "source": "api", "state": 1, "profile_id": 7}  # fmt: skip
            rows = [
                {**base, "message_id": f"m{i}", "event": "order", "properties": {"category": "Toys", "n": i}}
                for i in range(3)
            ]
            conn.execute(insert(events), rows)
            before = _event_index_names(conn)
            assert {"ix_events_pending", "ix_events_profile_time", "ix_events_segment_category",
                    "ix_events_workspace_name_time"} <= before  # fmt: skip
            assert [fk["name"] for fk in inspect(conn).get_foreign_keys("events")] == [
                "fk_events_workspace_id_workspaces"
            ]
        migrate.upgrade(engine, "0016")
        with engine.begin() as conn:
            assert inspect(conn).get_foreign_keys("events") == []
            assert _event_index_names(conn) == before
            events = Table("events", MetaData(), autoload_with=conn)
            rows = conn.execute(select(events.c.message_id, events.c.properties).order_by(events.c.id)).all()
            assert rows == [(f"m{i}", {"category": "Toys", "n": i}) for i in range(3)]
            # the key no longer refuses a workspace id (the edges decide the workspace)
            orphan = {
                **base,
                "workspace_id": ws + 100,
                "message_id": "orphan",
                "event": "x",
                "properties": {},
            }
            conn.execute(insert(events).values(**orphan))
        migrate.downgrade(engine, "0015")
        with engine.connect() as conn:
            assert [fk["name"] for fk in inspect(conn).get_foreign_keys("events")] == [
                "fk_events_workspace_id_workspaces"
            ]
            assert _event_index_names(conn) == before
            events = Table("events", MetaData(), autoload_with=conn)
            assert conn.execute(select(events.c.message_id).order_by(events.c.id)).scalars().all() == [
                "m0",
                "m1",
                "m2",
            ]  # the orphan went with the key's return
        migrate.upgrade(engine)
    finally:
        engine.dispose()
