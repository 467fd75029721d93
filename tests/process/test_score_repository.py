"""Score inputs read in aggregate passes and bulk merge-patches, exact on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, select

from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.models import Event, Identity, Profile, ProfileScores
from rapport.process import score_repository
from rapport.process.computed import PurchaseSettings
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY0 = score_repository.day_number(NOW)


def _event(user: str, name: str, when: datetime, total: Any = None) -> dict[str, Any]:
    props = {} if total is None else {"total": total}
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{name}-{when.isoformat()}",
        "timestamp": when.isoformat(),
        "properties": props,
    }


def _ids(runtime: Runtime, ws: int) -> dict[str, int]:
    with runtime.read_sessions() as db:
        rows = db.execute(
            select(Identity.value, Identity.profile_id).where(
                Identity.workspace_id == ws, Identity.kind == "user_id"
            )
        )
        return {v: p for v, p in rows}


def test_day_number_is_whole_utc_days_since_1970() -> None:
    assert score_repository.day_number(datetime(1970, 1, 2, 23, 59, tzinfo=UTC)) == 1
    assert score_repository.day_number(datetime(2026, 3, 1, tzinfo=UTC)) == 20513


def test_daily_purchases_and_activity_in_one_pass_each(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        _event("a", "order_completed", midnight - timedelta(microseconds=1), 10),  # last instant of day -1
        _event("a", "order_completed", midnight, 5.5),  # first instant of day 0
        _event("a", "order_completed", midnight + timedelta(hours=3), 4),
        _event("a", "order_completed", midnight + timedelta(hours=4), "n/a"),  # not a number: counts, 0 value
        _event("a", "page_viewed", midnight - timedelta(days=40)),
        _event("b", "order_completed", midnight - timedelta(days=3), 20),
        _event("b", "order_completed", NOW + timedelta(hours=1), 99),  # after now: left out
        _event("c", "email_opened", midnight - timedelta(days=2)),
    ]
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": "quiet"}])
    ids = _ids(runtime, ws)
    with runtime.read_sessions() as db:
        days = score_repository.purchase_days(db, ws, PurchaseSettings(), before=NOW)
        act = score_repository.activity(
            db,
            ws,
            before=NOW,
            windows=[(midnight - timedelta(days=30), midnight), (midnight - timedelta(days=60), midnight)],
        )
        pop = score_repository.population(db, ws)
    got = list(
        zip(
            days.profile_ids.tolist(),
            days.days.tolist(),
            days.counts.tolist(),
            days.values.tolist(),
            strict=True,
        )
    )
    a, b, c = ids["a"], ids["b"], ids["c"]
    assert got == sorted([(a, DAY0 - 1, 1, 10.0), (a, DAY0, 3, 9.5), (b, DAY0 - 3, 1, 20.0)])
    by_profile = {
        int(p): (int(f), w.tolist())
        for p, f, w in zip(act.profile_ids, act.first_day, act.window_counts, strict=True)
    }
    assert by_profile == {
        a: (DAY0 - 40, [1, 2]),
        b: (DAY0 - 3, [1, 1]),
        c: (DAY0 - 2, [1, 1]),
    }
    assert pop.ids.tolist() == sorted([a, b, c, ids["quiet"]])
    first = dict(zip(pop.ids.tolist(), pop.first_day.tolist(), strict=True))
    assert (first[a], first[b], first[c]) == (DAY0 - 40, DAY0 - 3, DAY0 - 2)  # first seen = first event


def _scores(runtime: Runtime, ws: int) -> dict[int, dict[str, Any]]:
    with runtime.read_sessions() as db:
        rows = db.execute(select(ProfileScores.profile_id, ProfileScores.scores)).all()
        owners = dict(db.execute(select(Profile.id, Profile.workspace_id)).tuples().all())
    return {pid: dict(s) for pid, s in rows if owners[pid] == ws}


def test_merge_patches_sets_removes_and_leaves_other_keys(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    ws = tenant.workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": u} for u in ("p1", "p2", "p3")])
    import_profile_rows(runtime, workspace_id=other_tenant.workspace_id, rows=[{"user_id": "theirs"}])
    ids = _ids(runtime, ws)
    theirs = _ids(runtime, other_tenant.workspace_id)["theirs"]
    with runtime.sessions() as db:
        for user in ("p1", "p2"):
            profile = db.get(Profile, ids[user])
            assert profile is not None
            profile.computed = {"total_orders": 3}
            db.add(
                ProfileScores(
                    profile_id=ids[user], workspace_id=ws, scores={"clv_12m": 1.0, "nested": {"k": [1, 2]}}
                )
            )
        db.commit()
    with runtime.sessions() as db:
        written = score_repository.merge_patches(
            db,
            ws,
            [ids["p1"], ids["p2"], ids["p3"]],
            ['{"clv_12m":9.5,"rfm_segment":"champions"}', '{"clv_12m":null,"rfm_r":2}', '{"rfm_r":1}'],
            [(), ("clv_12m",), ()],
        )
        # a second call in the same transaction applies only its own rows; another workspace's id is skipped
        score_repository.merge_patches(db, ws, [ids["p3"], theirs], ['{"rfm_f":4}', '{"rfm_f":1}'], [(), ()])
        db.commit()
    assert written == 3
    scores = _scores(runtime, ws)
    assert scores[ids["p1"]] == {"clv_12m": 9.5, "nested": {"k": [1, 2]}, "rfm_segment": "champions"}
    assert scores[ids["p2"]] == {"nested": {"k": [1, 2]}, "rfm_r": 2}
    assert scores[ids["p3"]] == {"rfm_r": 1, "rfm_f": 4}
    assert _scores(runtime, other_tenant.workspace_id) == {}
    with runtime.read_sessions() as db:
        assert db.get(Profile, ids["p1"]).computed == {"total_orders": 3}  # type: ignore[union-attr]
        read = score_repository.scores_of(db, ws, [ids["p2"], ids["p2"], theirs, ids["p3"]])
        assert read == {ids["p2"]: scores[ids["p2"]], ids["p3"]: scores[ids["p3"]]}
        assert score_repository.scores_of(db, other_tenant.workspace_id, [ids["p1"]]) == {}


def test_activity_keeps_to_the_workspace_whether_its_ids_are_dense_or_scattered(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    ws, other = tenant.workspace_id, other_tenant.workspace_id
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    windows = [
        (midnight - timedelta(days=10), midnight),
        (midnight - timedelta(days=20), midnight - timedelta(days=5)),  # overlaps the first
        (midnight + timedelta(days=5), midnight + timedelta(days=9)),  # starts after ``before``
    ]
    # Interleaved profiles: u0, x0, u1, x1, ... so the workspace's ids are every other id of its range.
    for i in range(6):
        for workspace, user in ((ws, f"u{i}"), (other, f"x{i}")):
            when = [midnight - timedelta(days=d, hours=i) for d in (1, 7, 12, 30 + i)]
            import_event_rows(
                runtime, workspace_id=workspace, rows=[_event(user, "page_viewed", t) for t in when]
            )
    ids = _ids(runtime, ws)
    expected = {ids[f"u{i}"]: (DAY0 - 30 - i - 1 if i else DAY0 - 30, [2, 2, 0]) for i in range(6)}

    def read(dense: int) -> dict[int, tuple[int, list[int]]]:
        with runtime.read_sessions() as db:
            act = score_repository.activity(db, ws, before=NOW, windows=windows, dense_ids=dense)
        return {
            int(p): (int(f), w.tolist())
            for p, f, w in zip(act.profile_ids, act.first_day, act.window_counts, strict=True)
        }

    assert read(4) == expected  # id range walked, the other workspace's profiles dropped
    assert read(1) == expected  # too sparse for that: joined through the workspace's profiles


def test_postgresql_reads_send_the_parameters_sqlalchemy_would(runtime: Runtime, tenant: Tenant) -> None:
    """The raw server-side cursor gets each parameter processed by its bind's type, expanded IN lists too."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite reads go through SQLAlchemy's own execution")
    stmt = select(Event.profile_id, score_repository.epoch_day(Event.timestamp)).where(
        Event.workspace_id == tenant.workspace_id,
        Event.event.in_(["order_completed", "Order Completed"]),
        Event.timestamp < datetime(2026, 3, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))),
    )
    sent: list[Any] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        sent.append(parameters)

    with runtime.read_sessions() as db:
        conn = db.connection()
        event.listen(runtime.engine, "before_cursor_execute", capture)
        try:
            conn.execute(stmt).all()
        finally:
            event.remove(runtime.engine, "before_cursor_execute", capture)
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        ours = score_repository._processed_params(compiled, conn.dialect)
    assert ours is not None
    assert repr(sorted(ours.items())) == repr(sorted(sent[0].items()))  # repr: the time zone too
    assert "datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)" in repr(ours)


def test_merge_patches_with_named_removals_and_odd_keys(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    users = [f"q{i}" for i in range(5)]
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": u} for u in users])
    ids = _ids(runtime, ws)
    odd = ['a "quoted" key', "back\\slash", "comma,{brace}", "plain"]
    stored = {k: 1 for k in odd} | {"keep": True}
    with runtime.sessions() as db:
        for user in users:
            db.add(ProfileScores(profile_id=ids[user], workspace_id=ws, scores=dict(stored)))
        db.commit()
    # q0, q2 and q4 get patches; q1 and q3 sit inside the ids' range and must stay as they were
    patch = json.dumps({odd[0]: None, odd[1]: None, odd[2]: None, "new": 2.5})
    with runtime.sessions() as db:
        written = score_repository.merge_patches(
            db,
            ws,
            [ids["q0"], ids["q2"], ids["q4"]],
            [patch, '{"plain":null}', '{"new":1}'],
            [(odd[0], odd[1], odd[2]), ("plain",), ()],
        )
        db.commit()
    assert written == 3
    got = {u: _scores(runtime, ws)[ids[u]] for u in users}
    assert got["q0"] == {"plain": 1, "keep": True, "new": 2.5}
    assert got["q2"] == {odd[0]: 1, odd[1]: 1, odd[2]: 1, "keep": True}
    assert got["q4"] == stored | {"new": 1}
    assert got["q1"] == got["q3"] == stored
