"""Queries keyed by profile are planned on their profile index on SQLite, which keeps no statistics.

Without statistics SQLite takes ``workspace_id = ?`` for a selective filter; one workspace may hold every
row, so a query for a few profiles' rows planned on an index that starts with ``workspace_id`` walks the whole
workspace (a million-customer import slowed to a thousand events a second on exactly that). Every statement
the profile-keyed paths run is captured and explained on the real database: none may search an index by
``workspace_id`` without ``profile_id``.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.config import Settings
from rapport.consent import repository as consent_repo
from rapport.kit.pagination import Page
from rapport.models import Identity
from rapport.process import repository as process_repo
from rapport.process import traits_service
from rapport.profiles import repository as profiles_repo
from rapport.runtime import Runtime, build_runtime
from tests.support.databases import SqliteFactory
from tests.support.tenants import make_tenant

_WORKSPACE_ONLY = re.compile(r"USING (COVERING )?INDEX \S+ \(workspace_id=\?(?![^)]*profile_id)")
#: A walk of the whole events table, or of a whole index of it (``SCAN events USING INDEX …``).
_EVENTS_WALK = re.compile(r"^SCAN events\b")


def test_profile_keyed_queries_never_walk_a_whole_workspace(
    sqlite_factory: SqliteFactory, tmp_path: Path
) -> None:
    url = sqlite_factory.new_url(tmp_path)
    runtime = build_runtime(Settings(database_url=url, secret_key="test-secret-key-0123456789"))
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "profile_id IN" in statement or "profile_id = ?" in statement:
            captured.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        ws = make_tenant(runtime, slug="plans").workspace_id
        people = [{"user_id": f"u{i}", "email": f"u{i}@x.io"} for i in range(5)]
        import_profile_rows(runtime, workspace_id=ws, rows=people)
        orders = [
            {
                "type": "track",
                "userId": f"u{i}",
                "event": "Order",
                "properties": {"total": i},
                "messageId": f"m{i}",
            }
            for i in range(5)
        ]
        import_event_rows(runtime, workspace_id=ws, rows=orders)
        import_profile_rows(runtime, workspace_id=ws, rows=people)  # known profiles: their identities counted
        traits_service.recompute(runtime, ws)
        with runtime.sessions() as db:
            ids = [p for (p,) in db.query(Identity.profile_id).filter(Identity.workspace_id == ws)]
            list(process_repo.events_of_profiles(db, ws, ids, names={"Order"}))
            consent_repo.subscriptions_for(db, workspace_id=ws, profile_ids=ids, channels=["email"])
            consent_repo.list_log(db, workspace_id=ws, profile_id=ids[0])
            profiles_repo.identities(db, workspace_id=ws, profile_id=ids[0])
            profiles_repo.trait_history(db, workspace_id=ws, profile_id=ids[0], page=Page(limit=10, offset=0))
            # the timeline, also by name and time (ix_events_profile_time holds linked events only: 0012)
            profiles_repo.events(db, workspace_id=ws, profile_id=ids[0], page=Page(limit=10, offset=0))
            profiles_repo.events(
                db, workspace_id=ws, profile_id=ids[0], page=Page(limit=10, offset=0), name="Order"
            )
            profiles_repo.event_channels(db, workspace_id=ws, profile_id=ids[0])
            profiles_repo.delete_person(db, workspace_id=ws, profile_ids=ids[:1])
            db.rollback()
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
        runtime.close()
    tables = {
        t for s, _ in captured for t in ("identities", "events", "subscriptions", "consent_log") if t in s
    }
    assert tables == {"identities", "events", "subscriptions", "consent_log"}
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        for statement, parameters in captured:
            plan = [row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            walks = [line for line in plan if _WORKSPACE_ONLY.search(line) or _EVENTS_WALK.search(line)]
            assert not walks, (statement, plan)
    finally:
        raw.close()


def test_one_of_answers_like_in_on_both_databases_with_one_statement_text_on_postgresql(
    runtime: Runtime, backend: str
) -> None:
    from sqlalchemy import bindparam, select

    from rapport.db.planner import one_of, same_workspace
    from rapport.models import Profile

    ws = make_tenant(runtime, slug="one-of").workspace_id
    import_profile_rows(
        runtime, workspace_id=ws, rows=[{"user_id": f"u{i}", "email": f"u{i}@x.io"} for i in range(6)]
    )
    table = Profile.__table__
    by_id = select(table.c.id).where(
        same_workspace(table.c.workspace_id, bindparam("ws")), one_of(table.c.id, "ids")
    )
    by_email = select(table.c.email).where(one_of(table.c.email, "emails"))
    texts: set[str] = set()

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        texts.add(statement)

    with runtime.sessions() as db:
        ids = sorted(db.execute(select(table.c.id).where(table.c.workspace_id == ws)).scalars())
        conn = db.connection()
        event.listen(runtime.engine, "before_cursor_execute", capture)
        try:
            for wanted in (ids[:1], ids[1:4], ids, [], [ids[0], -5]):
                got = sorted(conn.execute(by_id, {"ws": ws, "ids": wanted}).scalars())
                assert got == sorted(i for i in wanted if i in ids)
        finally:
            event.remove(runtime.engine, "before_cursor_execute", capture)
        assert sorted(conn.execute(by_email, {"emails": ["u2@x.io", "nobody@x.io"]}).scalars()) == ["u2@x.io"]
        assert list(conn.execute(by_id, {"ws": ws + 1, "ids": ids}).scalars()) == []
    if backend == "postgresql":
        assert (
            len(texts) == 1 and "= ANY" in texts.pop()
        )  # one text whatever the list's length: prepared once
    else:
        assert len(texts) > 1  # SQLite: an expanding IN, one ``?`` per value


def test_a_merge_finds_the_profiles_merged_into_the_one_it_merges_away_by_index(
    sqlite_factory: SqliteFactory, tmp_path: Path
) -> None:
    """A merge re-points the profiles that pointed at the one it merges away; planned on the workspace, that
    walked every profile of it (9% of a million-customer import's writer, growing with the workspace)."""
    url = sqlite_factory.new_url(tmp_path)
    runtime = build_runtime(Settings(database_url=url, secret_key="test-secret-key-0123456789"))
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "merged_into_id = ?" in statement and statement.lstrip().upper().startswith(("UPDATE", "SELECT")):
            captured.append((statement, parameters))

    event.listen(runtime.engine, "before_cursor_execute", capture)
    try:
        ws = make_tenant(runtime, slug="merges").workspace_id
        # a customer and two visitors known by email only; the customer then gives each email: two merges
        people = [
            {
                "type": "identify",
                "anonymousId": f"a{i}",
                "traits": {"email": f"p{i}@x.io"},
                "messageId": f"v{i}",
            }
            for i in (1, 2)
        ]
        people.append({"type": "identify", "userId": "u", "messageId": "u"})
        report = import_event_rows(runtime, workspace_id=ws, rows=people)
        assert (report.created, report.merges) == (3, 0)
        for i in (1, 2):
            link = {
                "type": "identify",
                "userId": "u",
                "traits": {"email": f"p{i}@x.io"},
                "messageId": f"l{i}",
            }
            assert import_event_rows(runtime, workspace_id=ws, rows=[link]).merges == 1
    finally:
        event.remove(runtime.engine, "before_cursor_execute", capture)
        runtime.close()
    repoint = [c for c in captured if c[0].lstrip().upper().startswith("UPDATE")]
    assert len(repoint) == 2  # one per merge
    raw = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        for statement, parameters in captured:
            plan = [row[-1] for row in raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)]
            assert any("ix_profiles_merged_into" in line for line in plan), (statement, plan)
    finally:
        raw.close()
