"""Segments pages over HTTP on both databases: the builder's sync endpoint (text → AST → text, errors with
their line/column or JSON path and suggestion, counts equal to the segments service), save / duplicate /
archive, members and CSV, recent entries and exits, roles and CSRF."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rapport.app import create_app
from rapport.config import Settings
from rapport.models import Event, Profile, Segment, User
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime, build_runtime
from rapport.segments import service as segments_service
from rapport.synth.demo import fill_workspace
from tests.conftest import BACKENDS
from tests.support.databases import PostgresFactory, SqliteFactory
from tests.support.tenants import PASSWORD, Tenant, make_tenant
from tests.web.ui import ui_login

CUSTOMERS = 70
DEFINITION = 'city = "London" and purchased at least 1 time in last 365 days'
CANONICAL = 'city = "London" and purchased in last 365 days'


@dataclass(frozen=True)
class Shop:
    """A database of one backend with a demo workspace and an empty second workspace, built once per module."""

    runtime: Runtime
    tenant: Tenant
    other: Tenant
    app: FastAPI


@pytest.fixture(scope="module", params=BACKENDS)
def shop(
    request: pytest.FixtureRequest, sqlite_factory: SqliteFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """Synthetic customers with a year of events, loaded once per backend (filling is the slow part)."""
    factory: PostgresFactory | None = None
    if request.param == "sqlite":
        url = str(sqlite_factory.new_url(tmp_path_factory.mktemp("segments-ui")))
    else:
        factory = request.getfixturevalue("pg_factory")
        url = factory.new_url()
    settings = Settings(
        database_url=url, secret_key="test-secret-key-0123456789", run_worker_in_process=False
    )
    runtime = build_runtime(settings)
    try:
        tenant = make_tenant(runtime, "acme")
        other = make_tenant(runtime, "globex")
        _cheap_passwords(runtime, [tenant, other])
        fill_workspace(
            runtime, workspace_id=tenant.workspace_id, customers=CUSTOMERS, seed=11, show_progress=False
        )
        yield Shop(runtime, tenant, other, create_app(settings, runtime=runtime, start_worker=False))
    finally:
        runtime.close()
        if factory is not None:
            factory.drop(url)


def _cheap_passwords(runtime: Runtime, tenants: list[Tenant]) -> None:
    """Store the tenants' password hashed at argon2's lowest cost (logins here verify it many times)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    emails = [email for t in tenants for email in (t.admin_email, t.viewer_email)]
    with runtime.sessions() as db:
        db.execute(update(User).where(User.email.in_(emails)).values(password_hash=cheap))
        db.commit()


@pytest.fixture
def runtime(shop: Shop) -> Runtime:
    """The module's runtime."""
    return shop.runtime


@pytest.fixture
def demo(shop: Shop) -> Tenant:
    """The workspace with the demo customers."""
    return shop.tenant


@pytest.fixture
def other_tenant(shop: Shop) -> Tenant:
    """A second workspace of the same database, with no customers."""
    return shop.other


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    """A fresh HTTP client (no cookies) on the module's application."""
    with TestClient(shop.app, raise_server_exceptions=False) as c:
        yield c


def _preview(client: TestClient, csrf: str, **form: str) -> dict[str, Any]:
    answer = client.post("/segments/builder/preview", data=form, headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = answer.json()
    return body


def _service_count(runtime: Runtime, tenant: Tenant, text: str) -> int:
    with runtime.read_sessions() as db:
        found = segments_service.preview(
            db, workspace_id=tenant.workspace_id, text=text, ast=None, now=runtime.clock.now()
        )
        return found.count


def _segment(runtime: Runtime, tenant: Tenant, name: str) -> Segment:
    with runtime.sessions() as db:
        found = db.scalar(
            select(Segment).where(Segment.workspace_id == tenant.workspace_id, Segment.name == name)
        )
        assert found is not None, name
        db.expunge(found)
        return found


def test_text_becomes_ast_and_the_ast_prints_back_to_the_same_text_with_the_services_count(
    client: TestClient, demo: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    spaced = "  " + DEFINITION.replace(" and ", "\n AND ") + "  # note"
    from_text = _preview(client, csrf, source="text", text=spaced)
    assert from_text["ok"] is True
    assert from_text["text"] == CANONICAL
    root = from_text["ast"]["root"]
    assert root["type"] == "and"
    assert root["items"][0] == {"type": "compare", "field": "city", "op": "=", "value": "London"}
    assert root["items"][1]["type"] == "did" and root["items"][1]["event"] == "order_completed"
    expected = _service_count(runtime, demo, DEFINITION)
    assert 0 < expected < CUSTOMERS
    assert from_text["count"] == expected
    assert len(from_text["sample"]) == min(20, expected)
    ids = [row["id"] for row in from_text["sample"]]
    assert ids == sorted(ids)

    from_ast = _preview(client, csrf, source="ast", ast=json.dumps(from_text["ast"]))
    assert from_ast["ok"] is True
    assert from_ast["text"] == CANONICAL
    assert from_ast["ast"] == from_text["ast"]
    assert from_ast["count"] == expected

    # the visual editor's own spelling: a one-item group is the item, a not wraps a row
    visual = {
        "version": 1,
        "root": {
            "type": "or",
            "items": [
                {"type": "not", "item": {"type": "in_segment", "segment": "Nobody"}},
                {"type": "random_bucket", "op": "<", "percent": 25, "seed": "ui"},
            ],
        },
    }
    answer = _preview(client, csrf, source="ast", ast=json.dumps(visual))
    assert answer["ok"] is False  # no segment called Nobody in the catalogue yet
    assert answer["error"]["path"] == "root.items[0].item"
    assert "unknown segment 'Nobody'" in answer["error"]["message"]


def test_text_errors_name_line_column_and_the_nearest_field(client: TestClient, demo: Tenant) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    typo = _preview(client, csrf, source="text", text='purchased in last 30 days and\n  cty = "Leeds"')
    assert typo["ok"] is False
    error = typo["error"]
    assert (error["line"], error["column"]) == (2, 3)
    assert error["suggestion"] == "city"
    assert error["reason"] == "unknown field 'cty'"
    assert error["message"] == "line 2, column 3: unknown field 'cty' (did you mean 'city'?)"

    syntax = _preview(client, csrf, source="text", text="purchased at least three times")
    assert syntax["ok"] is False
    assert (syntax["error"]["line"], syntax["error"]["column"]) == (1, 20)
    assert syntax["error"]["expected"]

    typed = _preview(client, csrf, source="text", text='signup_date > "2025-01-01"')
    assert typed["ok"] is False
    assert "write dates without quotes" in typed["error"]["reason"]

    # nothing written yet is not an error
    assert _preview(client, csrf, source="text", text="   ") == {
        "ok": True,
        "empty": True,
        "text": "",
        "ast": None,
        "count": None,
        "sample": [],
    }
    assert _preview(client, csrf, source="ast", ast="")["empty"] is True


def test_visual_errors_carry_the_json_path_of_their_row(client: TestClient, demo: Tenant) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    document: dict[str, Any] = {
        "version": 1,
        "root": {
            "type": "and",
            "items": [
                {"type": "compare", "field": "city", "op": "=", "value": "Leeds"},
                {
                    "type": "or",
                    "items": [
                        {"type": "is_set", "field": "phone", "is_set": True},
                        {"type": "compare", "field": "loyalty_tierr", "op": "=", "value": "gold"},
                    ],
                },
            ],
        },
    }
    unknown = _preview(client, csrf, source="ast", ast=json.dumps(document))
    assert unknown["ok"] is False
    assert unknown["error"]["path"] == "root.items[1].items[1]"
    assert unknown["error"]["suggestion"] == "loyalty_tier"
    assert unknown["error"]["line"] is None

    document["root"]["items"][1] = {
        "type": "did",
        "event": "order_completed",
        "count": {"op": "at least", "n": -2},
        "window": {"kind": "ever"},
    }
    bad_count = _preview(client, csrf, source="ast", ast=json.dumps(document))
    assert bad_count["ok"] is False
    assert bad_count["error"]["path"].startswith("root.items[1].count")

    not_json = _preview(client, csrf, source="ast", ast="{nope")
    assert not_json["ok"] is False and not_json["error"]["reason"] == "not JSON"


def test_an_oversized_number_is_a_placed_error_in_the_live_count_and_on_save(
    client: TestClient, demo: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    text = "purchased at least 100000000000000000000 times in last 30 days"
    live = _preview(client, csrf, source="text", text=text)
    assert live["ok"] is False
    assert (live["error"]["line"], live["error"]["column"]) == (1, 20)
    assert live["error"]["reason"] == "a count must be at most 1,000,000,000"
    document = {
        "version": 1,
        "root": {"type": "did", "event": "order_completed", "count": {"op": "at least", "n": 10**20}},
    }
    visual = _preview(client, csrf, source="ast", ast=json.dumps(document))
    assert visual["ok"] is False and visual["error"]["path"] == "root.count"
    saved = client.post(
        "/segments/new", data={"csrf_token": csrf, "name": "Too many", "text": text}, follow_redirects=False
    )
    assert saved.status_code == 200
    assert "line 1, column 20: a count must be at most 1,000,000,000" in saved.text
    with runtime.sessions() as db:
        names = list(db.scalars(select(Segment.name).where(Segment.workspace_id == demo.workspace_id)))
    assert "Too many" not in names
    boundary = "purchased at most 1000000000 times"
    at_most = _preview(client, csrf, source="text", text=boundary)
    assert at_most["ok"] is True and at_most["count"] == _service_count(runtime, demo, boundary) > 0


def test_save_duplicate_archive_and_the_list_with_sizes(
    client: TestClient, demo: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    saved = client.post(
        "/segments/new",
        data={
            "csrf_token": csrf,
            "name": "London buyers",
            "description": "bought this year",
            "text": DEFINITION,
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    segment = _segment(runtime, demo, "London buyers")
    assert saved.headers["location"] == f"/segments/{segment.id}"
    expected = _service_count(runtime, demo, DEFINITION)
    assert segment.member_count == expected and segment.created_by.startswith("user:")
    page = client.get(saved.headers["location"])
    assert f"saved with {expected} members" in page.text
    assert 'id="segment-builder-data"' in page.text and "London buyers" in page.text

    listing = client.get("/segments").text
    row = re.search(rf'<tr id="segment-{segment.id}".*?</tr>', listing, re.S)
    assert row is not None
    assert f">{expected:,}</a>" in row.group(0) and "London buyers" in row.group(0)
    partial = client.get("/segments?partial=true", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith('<tbody id="segment-rows"') and "<html" not in partial.text

    edited = client.post(
        f"/segments/{segment.id}",
        data={"csrf_token": csrf, "name": "London buyers", "description": "", "text": 'city = "London"'},
        follow_redirects=False,
    )
    assert edited.status_code == 303
    after = _segment(runtime, demo, "London buyers")
    assert after.version == 2 and after.text == 'city = "London"'
    assert after.member_count == _service_count(runtime, demo, 'city = "London"') > expected

    copied = client.post(
        f"/segments/{segment.id}/duplicate", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert copied.status_code == 303
    copy = _segment(runtime, demo, "London buyers (copy)")
    assert copied.headers["location"] == f"/segments/{copy.id}" and copy.text == after.text
    again = client.post(
        f"/segments/{segment.id}/duplicate", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert again.status_code == 303
    assert _segment(runtime, demo, "London buyers (copy 2)").member_count == after.member_count

    archived = client.post(f"/segments/{copy.id}/archive", data={"csrf_token": csrf}, follow_redirects=False)
    assert archived.status_code == 303 and archived.headers["location"] == "/segments"
    assert "London buyers (copy)<" not in client.get("/segments").text
    with_archived = client.get("/segments?archived=true").text
    assert 'London buyers (copy)</a> <span class="badge badge--muted">archived</span>' in with_archived
    frozen = client.get(f"/segments/{copy.id}").text
    assert "This segment is archived" in frozen and 'data-testid="save-segment"' not in frozen


def test_a_failed_save_keeps_the_form_and_shows_the_error(
    client: TestClient, demo: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    answer = client.post(
        "/segments/new",
        data={"csrf_token": csrf, "name": "Typo", "text": 'cty = "Leeds"'},
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "line 1, column 1: unknown field &#39;cty&#39; (did you mean &#39;city&#39;?)" in answer.text
    assert 'aria-invalid="true"' in answer.text and "cty = &#34;Leeds&#34;" in answer.text
    nameless = client.post("/segments/new", data={"csrf_token": csrf, "name": " ", "text": 'city = "Leeds"'})
    assert "Give the segment a name." in nameless.text
    client.post("/segments/new", data={"csrf_token": csrf, "name": "Leeds taken", "text": 'city = "Leeds"'})
    taken = client.post(
        "/segments/new", data={"csrf_token": csrf, "name": "Leeds taken", "text": 'city = "York"'}
    )
    assert taken.status_code == 200 and "a segment called &#39;Leeds taken&#39; exists" in taken.text
    # over-long fields come back in the form with what was written, not as a generic error page
    long_text = " or ".join(f'city = "Town {n}"' for n in range(1200))  # ~21,000 characters
    too_long = client.post("/segments/new", data={"csrf_token": csrf, "name": "Towns", "text": long_text})
    assert too_long.status_code == 200
    assert f"The text is {len(long_text):,} characters long: at most 20,000 are allowed." in too_long.text
    assert "Town 1199" in too_long.text
    long_name = client.post(
        "/segments/new", data={"csrf_token": csrf, "name": "N" * 201, "text": long_text[:50]}
    )
    assert long_name.status_code == 200 and "The name is 201 characters long" in long_name.text
    with runtime.sessions() as db:
        names = list(db.scalars(select(Segment.name).where(Segment.workspace_id == demo.workspace_id)))
    assert "Typo" not in names and " " not in names and names.count("Leeds taken") == 1
    assert "Towns" not in names and "N" * 201 not in names


def test_members_page_paginates_and_the_csv_has_everyone(
    client: TestClient, demo: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    client.post("/segments/new", data={"csrf_token": csrf, "name": "Everyone", "text": "email is set"})
    segment = _segment(runtime, demo, "Everyone")
    assert segment.member_count > 50
    first = client.get(f"/segments/{segment.id}/members")
    assert first.status_code == 200
    assert first.text.count("<tr>") == 51  # header + 50 rows
    assert "?page=2" in first.text and 'rel="prev"' not in first.text
    second = client.get(f"/segments/{segment.id}/members?page=2")
    assert second.text.count("<tr>") == 1 + min(50, segment.member_count - 50)
    assert "Rows 51–" in second.text

    exported = client.get(f"/segments/{segment.id}/members.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0] == ["profile_id", "email", "phone", "name", "entered_at"]
    with runtime.read_sessions() as db:
        with_email = db.scalars(
            select(Profile.id).where(Profile.workspace_id == demo.workspace_id, Profile.email.is_not(None))
        ).all()
    assert sorted(int(r[0]) for r in rows[1:]) == sorted(with_email)


def test_the_list_counts_recent_entries_and_exits(client: TestClient, demo: Tenant, runtime: Runtime) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    client.post("/segments/new", data={"csrf_token": csrf, "name": "Leeds moves", "text": 'city = "Leeds"'})
    segment = _segment(runtime, demo, "Leeds moves")
    now = runtime.clock.now()
    with runtime.sessions() as db:
        pids = db.scalars(select(Profile.id).where(Profile.workspace_id == demo.workspace_id).limit(4)).all()
        for n, (pid, kind, days_ago) in enumerate(
            [
                (pids[0], "entered", 1),
                (pids[1], "entered", 2),
                (pids[2], "exited", 3),
                (pids[3], "entered", 9),
            ]
        ):
            db.add(
                Event(
                    workspace_id=demo.workspace_id,
                    message_id=f"test-{n}",
                    type="track",
                    event=f"segment_{kind}",
                    profile_id=pid,
                    channel="server",
                    timestamp=now - timedelta(days=days_ago),
                    received_at=now,
                    properties={"segment_id": segment.id, "segment_name": segment.name},
                    traits={},
                    context={},
                    extra={},
                    source="rapport",
                    state=PROCESSED,
                )
            )
        db.commit()
    row = re.search(rf'<tr id="segment-{segment.id}".*?</tr>', client.get("/segments").text, re.S)
    assert row is not None
    assert '<span class="seg-up">+2</span>' in row.group(0)
    assert '<span class="seg-down">−1</span>' in row.group(0)


def test_viewers_see_and_preview_but_cannot_save(client: TestClient, demo: Tenant, runtime: Runtime) -> None:
    admin_csrf = ui_login(client, demo.admin_email, demo.password)
    client.post(
        "/segments/new", data={"csrf_token": admin_csrf, "name": "Leeds viewed", "text": 'city = "Leeds"'}
    )
    segment = _segment(runtime, demo, "Leeds viewed")
    client.cookies.clear()
    csrf = ui_login(client, demo.viewer_email, demo.password)
    listing = client.get("/segments").text
    assert "Leeds viewed" in listing and "New segment" not in listing
    page = client.get(f"/segments/{segment.id}").text
    assert 'data-testid="read-only-note"' in page and 'data-testid="save-segment"' not in page
    assert "Duplicate" not in page and "Archive" not in page
    assert _preview(client, csrf, source="text", text='city = "Leeds"')["count"] == segment.member_count
    for path, data in (
        ("/segments/new", {"name": "Mine", "text": 'city = "York"'}),
        (f"/segments/{segment.id}", {"name": "Renamed", "text": 'city = "York"'}),
        (f"/segments/{segment.id}/duplicate", {}),
        (f"/segments/{segment.id}/archive", {}),
    ):
        refused = client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=False)
        assert refused.status_code == 403, path
        assert "Your role (viewer) cannot change anything here." in refused.text
    after = _segment(runtime, demo, "Leeds viewed")
    assert (after.name, after.version, after.archived_at) == ("Leeds viewed", 1, None)
    assert client.get(f"/segments/{segment.id}/members").status_code == 200


def test_posts_need_the_session_csrf_token(client: TestClient, demo: Tenant, runtime: Runtime) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": csrf[:-1]}):
        answer = client.post("/segments/builder/preview", data={"text": 'city = "Leeds"'}, headers=headers)
        assert answer.status_code == 403 and "Not allowed" in answer.text
    forged = client.post(
        "/segments/new", data={"csrf_token": "x", "name": "Forged", "text": 'city = "Leeds"'}
    )
    assert forged.status_code == 403
    with runtime.sessions() as db:
        assert db.scalar(select(Segment.id).where(Segment.name == "Forged")) is None
    client.cookies.clear()
    anonymous = client.post("/segments/builder/preview", data={"text": "x"}, follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"


def test_segments_of_another_workspace_are_not_found(
    client: TestClient, demo: Tenant, other_tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, demo.admin_email, demo.password)
    client.post("/segments/new", data={"csrf_token": csrf, "name": "Leeds private", "text": 'city = "Leeds"'})
    segment = _segment(runtime, demo, "Leeds private")
    client.cookies.clear()
    other_csrf = ui_login(client, other_tenant.admin_email, other_tenant.password)
    assert client.get(f"/segments/{segment.id}").status_code == 404
    assert client.get(f"/segments/{segment.id}/members.csv").status_code == 404
    archive = client.post(f"/segments/{segment.id}/archive", data={"csrf_token": other_csrf})
    assert archive.status_code == 404
    assert ">Leeds private</a>" not in client.get("/segments").text
    assert _preview(client, other_csrf, source="text", text="email is set")["count"] == 0
