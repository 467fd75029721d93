"""The segment service on both databases: validation, cycles, preview, membership baseline, CSV export."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from rapport.errors import Conflict
from rapport.kit.pagination import Page
from rapport.models import Campaign, Event, SegmentMember
from rapport.runtime import Runtime
from rapport.segments import ProfileFacts, SegmentError, catalog_service, realtime, service
from rapport.segments.evaluator import EventFact
from rapport.segments.schemas import SegmentCreate, SegmentUpdate
from tests.segments import sqldata
from tests.segments.typed import CATALOG, NOW
from tests.support.tenants import Tenant


def _people(runtime: Runtime, workspace_id: int) -> list[ProfileFacts]:
    facts = [
        ProfileFacts("x", {"city": "Leeds", "total_spend": 250, "name": "=HYPERLINK(1)"}),
        ProfileFacts("x", {"city": "York", "total_spend": 50}),
        ProfileFacts("x", {"city": "Hull"}, events=[EventFact("order_completed", NOW - timedelta(days=2))]),
    ]
    with runtime.engine.begin() as conn:
        stored = sqldata.load(conn, workspace_id, facts, catalog=CATALOG, segment_ids={}, first_id=7000)
        conn.execute(
            sqldata.PROFILES.update()
            .where(sqldata.PROFILES.c.id == 7000)
            .values(name="=HYPERLINK(1)", email="-a@x.io")
        )
    return stored


def _create(runtime: Runtime, workspace_id: int, name: str, text: str) -> int:
    with runtime.sessions() as db:
        segment = service.create_segment(
            db, workspace_id=workspace_id, data=SegmentCreate(name=name, text=text), actor="test", now=NOW
        )
        db.commit()
        return segment.id


def test_create_materialises_members_without_entry_events(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    sid = _create(runtime, tenant.workspace_id, "Leeds or York", 'city in ("Leeds", "York")')
    with runtime.sessions() as db:
        segment = service.get_segment(db, workspace_id=tenant.workspace_id, segment_id=sid)
        assert (segment.member_count, segment.seed, segment.version, segment.by_time) == (
            2,
            str(sid),
            1,
            False,
        )
        assert segment.text == 'city in ("Leeds", "York")'
        members = service.list_members(db, workspace_id=tenant.workspace_id, segment_id=sid, page=Page())
        assert [m.id for m in members] == [7000, 7001]
        assert all(m.entered_at == NOW for m in members)
        assert db.scalar(select(Event.id).where(Event.event == "segment_entered")) is None


def test_update_bumps_version_and_rebases_members(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    sid = _create(runtime, tenant.workspace_id, "Buyers", "purchased in last 7 days")
    with runtime.sessions() as db:
        segment = service.update_segment(
            db,
            workspace_id=tenant.workspace_id,
            segment_id=sid,
            data=SegmentUpdate(text="total_spend > 100"),
            now=NOW,
        )
        db.commit()
        assert (segment.version, segment.member_count, segment.by_time) == (2, 1, False)
        ids = set(db.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == sid)))
        assert ids == {7000}


def test_invalid_text_reports_line_and_column(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    with runtime.sessions() as db, pytest.raises(SegmentError) as caught:
        service.create_segment(
            db,
            workspace_id=tenant.workspace_id,
            data=SegmentCreate(name="Bad", text='city = "Leeds" and\n  totl_spend > 3'),
            actor="t",
            now=NOW,
        )
    assert (caught.value.line, caught.value.column, caught.value.suggestion) == (2, 3, "total_spend")


def test_cycles_are_refused_and_names_are_unique(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    _create(runtime, tenant.workspace_id, "A", "total_spend > 1")
    b = _create(runtime, tenant.workspace_id, "B", 'in segment "A"')
    with runtime.sessions() as db:
        a = service.list_segments(db, workspace_id=tenant.workspace_id)[0]
        with pytest.raises(SegmentError, match="segment cycle: 'A' → 'B' → 'A'"):
            service.update_segment(
                db,
                workspace_id=tenant.workspace_id,
                segment_id=a.id,
                data=SegmentUpdate(text='in segment "B"'),
                now=NOW,
            )
        with pytest.raises(Conflict):
            service.create_segment(
                db,
                workspace_id=tenant.workspace_id,
                data=SegmentCreate(name="B", text="city is set"),
                actor="t",
                now=NOW,
            )
        with pytest.raises(Conflict):  # B names A
            service.archive_segment(db, workspace_id=tenant.workspace_id, segment_id=a.id, now=NOW)
        assert service.get_segment(db, workspace_id=tenant.workspace_id, segment_id=b).member_count == 2


def test_preview_counts_and_samples(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    with runtime.read_sessions() as db:
        result = service.preview(db, workspace_id=tenant.workspace_id, text="city is set", ast=None, now=NOW)
        assert result.count == 3
        assert [s.id for s in result.sample] == [7000, 7001, 7002]
        bought = service.preview(
            db,
            workspace_id=tenant.workspace_id,
            text=None,
            ast={"version": 1, "root": {"type": "did", "event": "order_completed"}},
            now=NOW,
        )
        assert (bought.count, bought.text) == (1, "purchased")


def test_duplicate_copies_definition(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    sid = _create(runtime, tenant.workspace_id, "Leeds", 'city = "Leeds"')
    with runtime.sessions() as db:
        copy = service.duplicate_segment(
            db, workspace_id=tenant.workspace_id, segment_id=sid, name=None, actor="t", now=NOW
        )
        db.commit()
        assert (copy.name, copy.text, copy.member_count) == ("Leeds (copy)", 'city = "Leeds"', 1)
        assert copy.seed == str(copy.id) != str(sid)


def test_csv_export_is_formula_safe(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    sid = _create(runtime, tenant.workspace_id, "Leeds", 'city = "Leeds"')
    with runtime.read_sessions() as db:
        lines = list(service.export_csv(db, workspace_id=tenant.workspace_id, segment_id=sid))
    assert lines[0].strip() == "profile_id,email,phone,name,entered_at"
    assert lines[1].startswith("7000,'-a@x.io,,'=HYPERLINK(1),")
    assert [service.safe_cell(v) for v in ("=1", "+1", "-1", "@a", "\tx", "\rx", "ok", None)] == [
        "'=1", "'+1", "'-1", "'@a", "'\tx", "'\rx", "ok", ""
    ]  # fmt: skip


def test_catalogue_from_real_data(runtime: Runtime, tenant: Tenant) -> None:
    _people(runtime, tenant.workspace_id)
    with runtime.read_sessions() as db:
        catalog = catalog_service.build_catalog(db, workspace_id=tenant.workspace_id)
    assert catalog.traits is not None and catalog.traits["city"] == "string"
    assert catalog.computed["total_spend"] == "number"
    assert catalog.events is not None and {"order_completed", "email_opened"} <= set(catalog.events)


def test_windowed_computed_traits_come_from_the_process_sql(runtime: Runtime, tenant: Tenant) -> None:
    from rapport.models import ComputedTrait

    _people(runtime, tenant.workspace_id)
    with runtime.sessions() as db:
        db.add(
            ComputedTrait(
                workspace_id=tenant.workspace_id,
                name="orders_7d",
                event="order_completed",
                aggregation="count",
                window_days=7,
            )
        )
        db.commit()
    with runtime.read_sessions() as db:
        result = service.preview(
            db, workspace_id=tenant.workspace_id, text="orders_7d >= 1", ast=None, now=NOW
        )
        assert [s.id for s in result.sample] == [7002]
        none = service.preview(
            db, workspace_id=tenant.workspace_id, text="orders_7d >= 1", ast=None, now=NOW + timedelta(days=6)
        )
        assert none.count == 0
    assert _create_by_time(runtime, tenant.workspace_id, "orders_7d >= 1")
    assert not _create_by_time(runtime, tenant.workspace_id, "total_spend >= 1")


def _create_by_time(runtime: Runtime, workspace_id: int, text: str) -> bool:
    sid = _create(runtime, workspace_id, text, text)
    with runtime.read_sessions() as db:
        return service.get_segment(db, workspace_id=workspace_id, segment_id=sid).by_time


def test_engagement_names_a_campaign_of_the_workspace(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    with runtime.sessions() as db:
        spring = Campaign(workspace_id=ws, name="Spring sale", kind="broadcast", channel="email")
        autumn = Campaign(workspace_id=ws, name="Autumn", kind="broadcast", channel="email")
        db.add_all([spring, autumn])
        db.commit()
        spring_id, autumn_id = spring.id, autumn.id
    opened = [(7000, spring_id), (7001, autumn_id), (7001, autumn_id)]
    with runtime.engine.begin() as conn:
        conn.execute(
            sqldata.PROFILES.insert(),
            [{"id": pid, "workspace_id": ws, "traits": {}, "computed": {}} for pid in (7000, 7001, 7002)],
        )
        conn.execute(
            sqldata.EVENTS.insert(),
            [
                sqldata._event(
                    ws, pid, f"m{k}", "email_opened", NOW - timedelta(days=1), {"campaign_id": cid}
                )
                for k, (pid, cid) in enumerate(opened)
            ],
        )

    def count(text: str) -> int:
        with runtime.read_sessions() as db:
            return service.preview(db, workspace_id=ws, text=text, ast=None, now=NOW).count

    assert count('email.opened campaign "Spring sale"') == 1
    assert count('email.opened campaign "Autumn" at least 2 times in last 7 days') == 1
    assert count('email.opened campaign "Spring sale" or email.opened campaign "Autumn"') == 2
    with pytest.raises(SegmentError) as caught:
        count('email.opened campaign "Spring sail"')
    assert caught.value.details["suggestion"] == "Spring sale"


def test_materialise_writes_members_in_short_transactions(
    runtime: Runtime, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tenant.workspace_id
    with runtime.engine.begin() as conn:
        facts = [ProfileFacts("x", {"city": "Leeds" if n % 3 else "Hull"}) for n in range(9)]
        sqldata.load(conn, ws, facts, catalog=CATALOG, segment_ids={}, first_id=7000)
    with runtime.sessions() as db:
        segment = service.create_segment(
            db, workspace_id=ws, data=SegmentCreate(name="Leeds", text='city = "Leeds"'), actor="t", now=NOW,
            materialise=False,
        )  # fmt: skip
        db.commit()
        sid = segment.id
        assert (segment.status, segment.member_count) == ("building", 0)
    monkeypatch.setattr(realtime, "WRITE_CHUNK", 2)
    commits: list[int] = []
    listen = lambda conn: commits.append(1)  # noqa: E731
    event.listen(runtime.engine, "commit", listen)
    try:
        built = service.do_materialise(runtime, workspace_id=ws, segment_id=sid, now=NOW)
    finally:
        event.remove(runtime.engine, "commit", listen)
    assert (built.status, built.member_count, built.refreshed_at) == ("active", 6, NOW)
    assert len(commits) == 3 + 1  # six members, two per write transaction, then the counters
    with runtime.read_sessions() as db:
        members = set(db.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == sid)))
        assert members == {7001, 7002, 7004, 7005, 7007, 7008}
        assert db.scalar(select(Event.id).where(Event.event == "segment_entered")) is None


def test_refresh_tick_finishes_a_segment_left_building(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    _people(runtime, ws)
    with runtime.sessions() as db:
        segment = service.create_segment(
            db, workspace_id=ws, data=SegmentCreate(name="LY", text='city in ("Leeds", "York")'), actor="t",
            now=NOW, materialise=False,
        )  # fmt: skip
        db.commit()
        sid = segment.id
    with runtime.read_sessions() as db:  # a building segment is not re-evaluated in real time
        assert realtime.evaluate_batch(
            db, runtime, workspace_id=ws, profile_ids=[7000], event_names=set(), changed_traits={"city"},
            merged=False,
        ) == []  # fmt: skip
    realtime.RefreshTick(runtime).refresh_workspace(ws)
    with runtime.read_sessions() as db:
        built = service.get_segment(db, workspace_id=ws, segment_id=sid)
        assert (built.status, built.member_count) == ("active", 2)
        assert db.scalar(select(Event.id).where(Event.event == "segment_entered")) is None


def test_sampled_types_agree_with_infer_types(runtime: Runtime, tenant: Tenant) -> None:
    docs = [
        {
            "city": "Leeds",
            "age": 34,
            "vip": True,
            "tags": ["a"],
            "born": "1990-02-03",
            "_x": 1,
            "o": {"a": 1},
        },
        {"city": "York", "age": 35.5, "vip": False, "tags": [], "born": "2001-12-31T10:00:00Z", "n": None},
        {"city": 3, "age": "old", "seen": "2025-01-01 09:00", "note": "1999-99"},
    ]
    with runtime.engine.begin() as conn:
        conn.execute(
            sqldata.PROFILES.insert(),
            [
                {"id": 7000 + n, "workspace_id": tenant.workspace_id, "traits": doc, "computed": {}}
                for n, doc in enumerate(docs)
            ],
        )
    with runtime.read_sessions() as db:
        found = catalog_service.sampled_types(db, tenant.workspace_id, "traits")
    assert found == {**catalog_service.infer_types(docs), "o.a": "number"}
    assert found == {"city": "string", "age": "number", "vip": "boolean", "tags": "list", "born": "date",
                     "seen": "date", "note": "string", "o.a": "number"}  # fmt: skip


def test_dotted_trait_names_read_nested_objects(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    traits = [
        {"address": {"city": "Leeds"}, "lifestyle": {"group": "Urban"}},
        {"address": {"city": "York"}},
        {},
    ]
    with runtime.engine.begin() as conn:
        conn.execute(
            sqldata.PROFILES.insert(),
            [{"id": 7000 + n, "workspace_id": ws, "traits": t, "computed": {}} for n, t in enumerate(traits)],
        )
    with runtime.read_sessions() as db:
        catalog = catalog_service.build_catalog(db, workspace_id=ws)
        assert catalog.traits is not None and catalog.traits["address.city"] == "string"
        found = service.preview(
            db,
            workspace_id=ws,
            text='address.city = "Leeds" and lifestyle.group = "Urban"',
            ast=None,
            now=NOW,
        )
        assert (found.count, [s.id for s in found.sample]) == (1, [7000])
        assert found.text == 'address.city = "Leeds" and lifestyle.group = "Urban"'
        assert (
            service.preview(db, workspace_id=ws, text="address.city is not set", ast=None, now=NOW).count == 1
        )
        with pytest.raises(SegmentError) as caught:
            service.preview(db, workspace_id=ws, text='address.cty = "Leeds"', ast=None, now=NOW)
        assert caught.value.details["suggestion"] == "address.city"
