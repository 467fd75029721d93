"""Bulk import: rows and files, idempotency, error reports, erased people stay erased (R17), the API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rapport.collect import import_files
from rapport.collect.import_files import ErrorReportWriter, import_file, safe_cell
from rapport.collect.importer import RowError, derive_message_id, import_event_rows, import_profile_rows
from rapport.config import Settings
from rapport.models import Event, Identity, Job, Profile, TraitChange
from rapport.models.event import PROCESSED
from rapport.profiles import gdpr
from rapport.runtime import Runtime, build_runtime
from tests.collect.processing_support import append, at, events, identities, live_profiles, process
from tests.support.tenants import Tenant

PROFILE_CSV = (
    "Customer ID,E-mail,Mobile,First,Plan,Since\n"
    "c-1,Ann@Example.org,07911 123456,Ann,gold,2024-01-02\n"
    "c-2,bob@example.org,,Bob,free,2024-02-03\n"
    "c-3,not-an-email,,Cat,free,2024-03-04\n"
    ",,,,nobody,\n"
    'c-4,=HYPERLINK("http://x"),,Dan,free,\n'
)
MAPPING = [
    "Customer ID=user_id",
    "E-mail=email",
    "Mobile=phone",
    "First=first_name",
    "Plan=plan",
    "Since=since",
]


def _snapshot(runtime: Runtime, ws: int) -> dict[str, Any]:
    with runtime.read_sessions() as db:
        return {
            "profiles": [
                (p.id, p.traits, p.trait_times, p.email, p.phone, p.name, p.merged_into_id, p.updated_at)
                for p in db.scalars(select(Profile).where(Profile.workspace_id == ws).order_by(Profile.id))
            ],
            "identities": sorted(
                db.execute(
                    select(Identity.kind, Identity.value, Identity.profile_id).where(
                        Identity.workspace_id == ws
                    )
                )
            ),
            "history": db.scalar(
                select(func.count()).select_from(TraitChange).where(TraitChange.workspace_id == ws)
            ),
            "events": [
                (e.id, e.message_id, e.profile_id, e.state)
                for e in db.scalars(select(Event).where(Event.workspace_id == ws).order_by(Event.id))
            ],
        }


def test_profile_rows_create_profiles_with_identities_and_traits(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    report = import_profile_rows(
        runtime,
        workspace_id=ws,
        rows=[
            {
                "user_id": "u1",
                "email": "A@X.io",
                "phone": "+44 7911 123456",
                "first_name": "Ann",
                "plan": "pro",
            },
            {"email": "b@x.io", "external:crm": "CRM-7", "vip": True, "updated_at": "2025-05-01T00:00:00Z"},
        ],
    )
    assert (report.rows, report.imported, report.created, report.failed) == (2, 2, 2, 0)
    ann, bee = live_profiles(runtime, ws)
    assert ann.traits == {"email": "a@x.io", "phone": "+447911123456", "first_name": "Ann", "plan": "pro"}
    assert (ann.email, ann.phone, ann.name) == ("a@x.io", "+447911123456", "Ann")
    assert bee.trait_times["vip"] == "2025-05-01T00:00:00.000000+00:00"
    assert identities(runtime, ws) == {
        ("user_id", "u1"): ann.id,
        ("email", "a@x.io"): ann.id,
        ("phone", "+447911123456"): ann.id,
        ("email", "b@x.io"): bee.id,
        ("external:crm", "CRM-7"): bee.id,
    }
    assert ann.first_seen_at is None  # an import is not a visit


def test_reimporting_profiles_changes_nothing_and_updates_upsert(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    rows = [{"user_id": f"u{i}", "email": f"p{i}@x.io", "plan": "free"} for i in range(30)]
    import_profile_rows(runtime, workspace_id=ws, rows=rows, batch_size=7)
    before = _snapshot(runtime, ws)
    again = import_profile_rows(runtime, workspace_id=ws, rows=rows, batch_size=11)
    assert again.created == 0 and again.updated == 0
    assert _snapshot(runtime, ws) == before
    changed = import_profile_rows(runtime, workspace_id=ws, rows=[{"email": "P3@x.io", "plan": "pro"}])
    assert changed.created == 0 and changed.updated == 1
    assert len(live_profiles(runtime, ws)) == 30
    [p3] = [p for p in live_profiles(runtime, ws) if p.email == "p3@x.io"]
    assert p3.traits["plan"] == "pro"


def test_event_rows_arrive_processed_and_linked(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    rows = [
        {
            "type": "identify",
            "userId": "u1",
            "anonymousId": "a1",
            "traits": {"email": "u1@x.io", "tier": "gold"},
            "timestamp": at(0),
        },
        {
            "type": "track",
            "anonymousId": "a1",
            "event": "Viewed",
            "properties": {"sku": "S1"},
            "timestamp": at(1),
        },
        {
            "type": "track",
            "userId": "u2",
            "event": "Order Completed",
            "messageId": "m-9",
            "properties": {"revenue": 12.5},
            "context": {"channel": "store"},
            "timestamp": at(2),
        },
        {"type": "page", "anonymousId": "a3", "name": "Home", "timestamp": at(3)},
    ]
    report = import_event_rows(runtime, workspace_id=ws, rows=rows)
    assert (report.imported, report.created, report.failed) == (4, 3, 0)
    stored = events(runtime, ws)
    assert all(e.state == PROCESSED and e.source == "import" for e in stored)
    u1, u2, a3 = live_profiles(runtime, ws)
    assert [e.profile_id for e in stored] == [u1.id, u1.id, u2.id, a3.id]
    assert u1.traits == {"email": "u1@x.io", "tier": "gold"}
    assert u1.first_seen_at.isoformat() == at(0) and u1.last_seen_at.isoformat() == at(1)
    assert stored[2].message_id == "m-9" and stored[2].channel == "store"
    assert stored[0].message_id == derive_message_id(rows[0])
    # Re-running the same rows changes nothing: messageIds (given or derived) dedupe.
    before = _snapshot(runtime, ws)
    again = import_event_rows(runtime, workspace_id=ws, rows=rows, batch_size=2)
    assert (again.imported, again.duplicates) == (0, 4)
    assert _snapshot(runtime, ws) == before


def test_invalid_event_rows_are_reported_by_row_and_field(runtime: Runtime, tenant: Tenant) -> None:
    errors: list[RowError] = []
    report = import_event_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {"type": "track", "userId": "u", "event": "ok"},
            {"type": "track", "event": "no id"},
            {"type": "bogus", "userId": "u"},
            {"type": "track", "userId": "u", "event": "E", "timestamp": "yesterday"},
        ],
        on_error=errors.append,
    )
    assert report.imported == 1 and report.failed == 3
    assert [(e.row, e.column) for e in errors] == [(2, "userId"), (3, "type"), (4, "timestamp")]


def test_import_merges_profiles_linked_by_an_event(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": "u1"}, {"email": "e@x.io"}])
    report = import_event_rows(
        runtime, workspace_id=ws, rows=[{"type": "identify", "userId": "u1", "traits": {"email": "e@x.io"}}]
    )
    assert report.merges == 1
    [person] = live_profiles(runtime, ws)
    assert set(identities(runtime, ws).values()) == {person.id}


def test_an_alias_imported_in_the_batch_of_the_identify_it_renames_joins_that_person(
    runtime: Runtime, tenant: Tenant
) -> None:
    ws = tenant.workspace_id
    report = import_event_rows(
        runtime,
        workspace_id=ws,
        rows=[
            {"type": "identify", "userId": "u1", "anonymousId": "a1", "timestamp": at(0)},
            {"type": "track", "userId": "u1", "event": "Order Completed", "timestamp": at(1)},
            {"type": "alias", "previousId": "u1", "userId": "u2", "timestamp": at(2)},
        ],
    )
    assert report.imported == 3 and report.merges == 0
    [person] = live_profiles(runtime, ws)
    assert identities(runtime, ws) == {
        ("anonymous_id", "a1"): person.id,
        ("user_id", "u1"): person.id,
        ("user_id", "u2"): person.id,
    }


def test_csv_file_with_mapping_and_a_spreadsheet_safe_error_report(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    source = tmp_path / "customers.csv"
    source.write_text(PROFILE_CSV, encoding="utf-8")
    report_path = tmp_path / "errors.csv"
    report = import_file(
        runtime,
        workspace_id=tenant.workspace_id,
        path=source,
        kind="profiles",
        mapping=import_files.parse_mapping(MAPPING),
        error_path=report_path,
    )
    assert (report.rows, report.created, report.failed) == (5, 2, 3)
    rows = list(csv.reader(report_path.open(encoding="utf-8")))
    assert rows[0] == ["row", "column", "reason"]
    assert [r[:2] for r in rows[1:]] == [["3", "email"], ["4", ""], ["5", "email"]]
    ann, bob = live_profiles(runtime, tenant.workspace_id)
    assert ann.traits["since"] == "2024-01-02" and ann.phone == "+447911123456" and bob.name == "Bob"


def test_error_report_cells_are_formula_safe(tmp_path: Path) -> None:
    for raw in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"]:
        assert safe_cell(raw) == "'" + raw
    assert safe_cell("plain") == "plain" and safe_cell(None) == ""
    path = tmp_path / "e.csv"
    with ErrorReportWriter(path) as sink:
        sink(RowError(7, "=cmd|' /C calc'!A0", "@bad"))
    assert list(csv.reader(path.open()))[1] == ["7", "'=cmd|' /C calc'!A0", "'@bad"]


def test_jsonl_events_file_reports_unreadable_lines(runtime: Runtime, tenant: Tenant, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    lines = [
        json.dumps({"type": "track", "userId": "u", "event": "A", "messageId": "x1"}),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({"type": "track", "user": "u", "event": "B", "amount": 3}),
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "err.csv"
    report = import_file(
        runtime,
        workspace_id=tenant.workspace_id,
        path=source,
        kind="events",
        mapping={"user": "userId", "amount": "properties.amount"},
        error_path=errors,
    )
    assert (report.rows, report.imported, report.failed) == (4, 2, 2)
    assert [r[0] for r in list(csv.reader(errors.open()))[1:]] == ["2", "3"]
    stored = events(runtime, tenant.workspace_id)
    assert stored[1].properties == {"amount": 3}


def test_jsonl_lines_read_exactly_as_the_standard_library_reads_them(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    # The reader parses with orjson where that is provably identical and falls back to json otherwise:
    # an integer past 64 bits keeps every digit, a byte-order mark is skipped, and an unreadable line
    # still reports the standard library's reason and column.
    source = tmp_path / "events.jsonl"
    big = 2**70 + 1
    lines = [
        '{"type":"track","userId":"u","event":"Big","messageId":"b1","properties":{"n":' + str(big) + "}}",
        '{"type":"track","userId":"u","event":"Small","messageId":"b2","properties":{"x":1e-07}}',
        '{"type":"track","userId":"u",',
    ]
    source.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "err.csv"
    report = import_file(
        runtime, workspace_id=tenant.workspace_id, path=source, kind="events", error_path=errors
    )
    assert (report.imported, report.failed) == (2, 1)
    stored = {e.message_id: e.properties for e in events(runtime, tenant.workspace_id)}
    assert stored == {"b1": {"n": big}, "b2": {"x": 1e-07}}
    [_header, refused] = list(csv.reader(errors.open()))
    with pytest.raises(json.JSONDecodeError) as stdlib:
        json.loads(lines[2])
    assert refused[0] == "3"
    assert refused[2] == f"not JSON: {stdlib.value.msg} at column {stdlib.value.colno}"


@pytest.mark.parametrize("pipeline", [False, True])
def test_jsonl_lines_orjson_read_are_still_checked_for_what_a_database_cannot_store(
    runtime: Runtime, tenant: Tenant, tmp_path: Path, pipeline: bool
) -> None:
    # Lines orjson read skip the re-serialising check, but only when they have no \u0000 escape: a NUL is
    # refused with its reason either way, even from a line that names the reader's own marker key.
    source = tmp_path / "events.jsonl"
    lines = [
        '{"type":"track","userId":"u","event":"Ok","messageId":"n1","properties":{"s":"caf\\u00e9"}}',
        '{"type":"track","userId":"u","event":"Nul","messageId":"n2","properties":{"s":"a\\u0000b"}}',
        '{"type":"track","userId":"u","event":"Nul","messageId":"n3","properties":{"s":"\\u0000"},'
        '"__rapport_fast_json__":true}',
    ]
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    errors = tmp_path / "err.csv"
    report = import_file(
        runtime, workspace_id=tenant.workspace_id, path=source, kind="events", error_path=errors,
        pipeline=pipeline,
    )  # fmt: skip
    assert (report.imported, report.failed) == (1, 2)
    stored = events(runtime, tenant.workspace_id)
    assert [(e.message_id, e.properties, "__rapport_fast_json__" in e.extra) for e in stored] == [
        ("n1", {"s": "café"}, False)
    ]
    refused = list(csv.reader(errors.open()))[1:]
    assert [r[0] for r in refused] == ["2", "3"] and all("NUL" in r[2] for r in refused)


def test_erased_person_is_not_recreated_by_import_or_replayed_events(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    ws = tenant.workspace_id
    source = tmp_path / "customers.csv"
    source.write_text(PROFILE_CSV, encoding="utf-8")
    mapping = import_files.parse_mapping(MAPPING)
    import_file(runtime, workspace_id=ws, path=source, kind="profiles", mapping=mapping)
    sdk = [
        {
            "type": "identify",
            "userId": "c-1",
            "anonymousId": "anon-ann",
            "traits": {"plan": "gold"},
            "messageId": "s1",
        },
        {"type": "track", "userId": "c-1", "event": "Order Completed", "messageId": "s2"},
        {"type": "track", "anonymousId": "anon-ann", "event": "Viewed", "messageId": "s3"},
    ]
    append(runtime, ws, *sdk)
    process(runtime)
    ann = next(p for p in live_profiles(runtime, ws) if p.email == "ann@example.org")
    with runtime.sessions() as db:
        gdpr.erase_profile(db, workspace_id=ws, profile_id=ann.id, actor="test")
        db.commit()
    assert all(p.email != "ann@example.org" for p in live_profiles(runtime, ws))
    assert events(runtime, ws) == []

    # Re-import the same CSV and replay the SDK traffic: the importer, the processor and the event
    # importer all refuse Ann; Bob is untouched.
    again = import_file(runtime, workspace_id=ws, path=source, kind="profiles", mapping=mapping)
    assert again.suppressed == 1
    append(runtime, ws, *[{**m, "messageId": m["messageId"] + "-replay"} for m in sdk])
    process(runtime)
    replayed = import_event_rows(runtime, workspace_id=ws, rows=sdk)
    assert replayed.suppressed == 3 and replayed.imported == 0  # anon-ann was one of Ann's identifiers too
    emails = [p.email for p in live_profiles(runtime, ws)]
    assert "ann@example.org" not in emails and "bob@example.org" in emails
    assert ("user_id", "c-1") not in identities(runtime, ws)
    assert ("email", "ann@example.org") not in identities(runtime, ws)
    assert events(runtime, ws) == []  # the replayed pending events were dropped from the log


def test_upload_api_runs_the_import_as_a_job(
    client: TestClient, app: FastAPI, tenant: Tenant, runtime: Runtime
) -> None:
    body = PROFILE_CSV.encode()
    answer = client.post(
        "/api/v1/imports",
        headers=tenant.secret_headers,
        files={"file": ("customers.csv", io.BytesIO(body), "text/csv")},
        data={"kind": "profiles", "mapping": json.dumps(dict(m.split("=", 1) for m in MAPPING))},
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["status"] == "queued" and job["filename"] == "customers.csv"
    app.state.worker.drain()
    done = client.get(f"/api/v1/imports/{job['id']}", headers=tenant.secret_headers).json()
    assert done["status"] == "done"
    assert done["report"]["created"] == 2 and done["report"]["failed"] == 3 and done["rows"] == 5
    errors = client.get(f"/api/v1/imports/{job['id']}/errors", headers=tenant.secret_headers)
    assert errors.status_code == 200 and errors.text.splitlines()[0] == "row,column,reason"
    assert len(live_profiles(runtime, tenant.workspace_id)) == 2


def test_upload_api_refuses_unknown_formats_and_write_keys(client: TestClient, tenant: Tenant) -> None:
    files = {"file": ("x.xlsx", io.BytesIO(b"x"), "application/octet-stream")}
    bad = client.post(
        "/api/v1/imports", headers=tenant.secret_headers, files=files, data={"kind": "profiles"}
    )
    assert bad.status_code == 400
    refused = client.post(
        "/api/v1/imports", headers=tenant.write_headers, files=files, data={"kind": "profiles"}
    )
    assert refused.status_code == 403


def test_an_unreadable_upload_is_refused_at_once_or_fails_once_in_words(
    client: TestClient, app: FastAPI, tenant: Tenant, runtime: Runtime
) -> None:
    # not UTF-8 (a spreadsheet's Windows-1252 CSV): refused before anything is queued
    legacy = "email,name\nann@example.org,Zoë\n".encode("cp1252")
    refused = client.post(
        "/api/v1/imports",
        headers=tenant.secret_headers,
        files={"file": ("people.csv", io.BytesIO(legacy), "text/csv")},
        data={"kind": "profiles"},
    )
    assert refused.status_code == 400 and "not UTF-8 text (byte 30)" in refused.json()["error"]["message"]
    # a cell past the csv module's limit: the job fails once (no retry), in words
    huge = "email,name\nann@example.org,Ann\nbob@example.org," + "b" * 140_000 + "\n"
    answer = client.post(
        "/api/v1/imports",
        headers=tenant.secret_headers,
        files={"file": ("people.csv", io.BytesIO(huge.encode()), "text/csv")},
        data={"kind": "profiles"},
    )
    assert answer.status_code == 202, answer.text
    app.state.worker.drain()
    failed = client.get(f"/api/v1/imports/{answer.json()['id']}", headers=tenant.secret_headers).json()
    assert failed["status"] == "dead"
    assert failed["error"].startswith("the CSV is malformed after row 1: field larger than field limit")
    with runtime.sessions() as db:
        attempts = db.scalar(select(Job.attempts).where(Job.id == answer.json()["id"]))
    assert attempts == 1  # not retried: the file will not change


def _analysed(runtime: Runtime) -> dict[str, int]:
    """How many times each table was ANALYZEd by hand (PostgreSQL's statistics views)."""
    from sqlalchemy import text

    with runtime.engine.connect() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        rows = conn.execute(
            text("SELECT relname, analyze_count FROM pg_stat_user_tables WHERE relname = ANY(:t)"),
            {"t": ["profiles", "identities", "trait_history", "events"]},
        ).all()
    return {name: int(count) for name, count in rows}


def test_a_bulk_import_refreshes_postgresql_statistics(
    runtime: Runtime, tenant: Tenant, backend: str
) -> None:
    from rapport.collect.importer import ANALYZE_AFTER

    if backend != "postgresql":
        pytest.skip("SQLite keeps no statistics; its queries are shaped for that (db.planner)")
    before = _analysed(runtime)
    import_profile_rows(
        runtime, workspace_id=tenant.workspace_id, rows=[{"user_id": f"small{i}"} for i in range(10)]
    )
    assert _analysed(runtime) == before  # a small import leaves it to autovacuum
    import_profile_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[{"user_id": f"u{i}", "plan": "gold"} for i in range(ANALYZE_AFTER)],
    )
    after_profiles = _analysed(runtime)
    for table in ("profiles", "identities", "trait_history"):
        assert after_profiles.get(table, 0) == before.get(table, 0) + 1, table
    assert after_profiles.get("events", 0) == before.get("events", 0)
    import_event_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {"type": "track", "event": "Viewed", "userId": f"u{i}", "messageId": f"v{i}"}
            for i in range(ANALYZE_AFTER)
        ],
    )
    assert _analysed(runtime)["events"] == before.get("events", 0) + 1


def _estimated_rows(runtime: Runtime, tables: tuple[str, ...]) -> dict[str, float]:
    """The planner's row count of each table (``pg_class.reltuples``: -1 or 0 until it is analysed)."""
    from sqlalchemy import text

    with runtime.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT relname, reltuples FROM pg_class WHERE relkind = 'r' AND relname = ANY(:t)"),
            {"t": list(tables)},
        ).all()
    return {name: float(n) for name, n in rows}


def test_an_import_into_tables_never_analysed_analyses_them_after_its_first_batch(
    backend: str, fresh_db_url: str, settings: Settings
) -> None:
    """A fresh database's tables have no statistics; the import's later batches must not be planned as if
    the tables were empty (their key lookups became scans of every row the batches before had written)."""
    from rapport.collect.importer import ANALYZE_AFTER
    from tests.support.tenants import make_tenant

    if backend != "postgresql":
        pytest.skip("SQLite keeps no statistics; its queries are shaped for that (db.planner)")
    runtime = build_runtime(settings.model_copy(update={"database_url": fresh_db_url}))
    try:
        tenant = make_tenant(runtime, "fresh")
        tables = ("profiles", "identities")
        assert all(n <= 0 for n in _estimated_rows(runtime, tables).values())
        seen: list[dict[str, float]] = []

        def progress(rows: int) -> None:  # after each batch's commit
            seen.append(_estimated_rows(runtime, tables))

        before = _analysed(runtime)
        report = import_profile_rows(
            runtime,
            workspace_id=tenant.workspace_id,
            rows=[{"user_id": f"f{i}", "email": f"f{i}@example.org"} for i in range(3 * ANALYZE_AFTER)],
            batch_size=ANALYZE_AFTER,
            progress=progress,
        )
        assert report.imported == 3 * ANALYZE_AFTER
        # unknown after the first batch; known to the planner when the second ran: the first batch's
        # profiles, two identities each
        assert seen[0]["profiles"] <= 0
        assert seen[1]["profiles"] >= ANALYZE_AFTER and seen[1]["identities"] >= 2 * ANALYZE_AFTER
        after = _analysed(runtime)
        assert after["profiles"] == before.get("profiles", 0) + 2  # after the first batch, and at the end
        # tables with statistics are left to the final ANALYZE
        import_profile_rows(
            runtime,
            workspace_id=tenant.workspace_id,
            rows=[{"user_id": f"g{i}"} for i in range(2 * ANALYZE_AFTER)],
            batch_size=ANALYZE_AFTER,
        )
        assert _analysed(runtime)["profiles"] == after["profiles"] + 1
    finally:
        runtime.close()


def _event_row(ws: int, message_id: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from rapport.collect import normalize as norm

    result = norm.normalize(
        {"type": "track", "userId": "r1", "event": "order_completed", "messageId": message_id},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert isinstance(result, norm.Normalized)
    return {**result.row, "workspace_id": ws}


def test_an_insert_returns_the_ids_of_the_rows_it_stored_and_skips_the_rest(
    runtime: Runtime, tenant: Tenant
) -> None:
    from rapport.collect import ingest

    ws = tenant.workspace_id
    with runtime.sessions() as db:
        ingest.append_events(db, [_event_row(ws, "stored")])
        db.commit()
    with runtime.sessions() as db:
        ids = ingest.append_events_returning(db, [_event_row(ws, m) for m in ("stored", "new-1", "new-2")])
        db.commit()
    stored = {e.message_id: e.id for e in events(runtime, ws)}
    assert ids == {"new-1": stored["new-1"], "new-2": stored["new-2"]}
    with runtime.sessions() as db, pytest.raises(ValueError, match="every events column"):
        ingest.append_events_returning(db, [{"workspace_id": ws, "message_id": "partial"}])


def test_an_event_another_writer_stores_during_the_batch_is_not_the_imports(
    runtime: Runtime, tenant: Tenant, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the import's check of known messageIds and its insert are apart, and the API does not
    take the workspace's lock. An event it stores in between is skipped by the insert; the import neither
    counts it nor hands it to the hooks (its computed traits would count it twice, once more when the
    processor links it)."""
    from rapport.app import wire_runtime
    from rapport.collect import importer

    if backend != "postgresql":
        pytest.skip("SQLite: the batch's transaction holds the write lock from its start (BEGIN IMMEDIATE)")
    wire_runtime(runtime)
    ws = tenant.workspace_id
    real_check = importer._existing_message_ids

    def check_then_the_api_stores_m1(db: Any, workspace_id: int, ids: list[str]) -> set[str]:
        found = real_check(db, workspace_id, ids)
        append(runtime, ws, {"type": "track", "userId": "r1", "event": "order_completed", "messageId": "m1"})
        return found

    monkeypatch.setattr(importer, "_existing_message_ids", check_then_the_api_stores_m1)
    rows = [
        {"type": "track", "userId": "r1", "event": "order_completed", "messageId": m, "timestamp": at(i)}
        for i, m in enumerate(("m1", "m2"))
    ]
    report = import_event_rows(runtime, workspace_id=ws, rows=rows)
    assert (report.imported, report.duplicates) == (1, 1)
    stored = {e.message_id: e for e in events(runtime, ws)}
    assert stored["m1"].source == "api" and stored["m1"].profile_id is None
    assert stored["m2"].source == "import" and stored["m2"].profile_id is not None
    (person,) = live_profiles(runtime, ws)
    assert person.computed["total_orders"] == 1
