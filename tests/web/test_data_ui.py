"""Data section: CSV imports with a column mapping run as jobs, computed traits, lifestyle tables and the
quarantine, through the UI's forms on both databases (roles, CSRF, errors shown in place)."""

from __future__ import annotations

import html
import io
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.collect import quarantine as quarantine_service
from rapport.collect.importer import import_profile_rows
from rapport.kit.pagination import Page
from rapport.models import AuditEntry, ComputedTrait, Event, Identity, Job, Profile
from rapport.process import lifestyle, traits_service
from rapport.runtime import Runtime
from rapport.web import data_mapping
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

PROFILES_CSV = (
    "Customer ID,E-mail,Mobile,Full name,Loyalty tier,CRM ref,Notes\n"
    "c-1,ann@example.org,+447911123456,Ann Lee,gold,A-1,hello\n"
    "c-2,bob@example.org,,Bob Roe,silver,A-2,\n"
    "c-3,not-an-email,,Cat,bronze,A-3,\n"
)
EVENTS_CSV = (
    "user_id,email,total,sku,timestamp\n"
    "u-1,ann@example.org,12.50,SKU-1,2026-11-01T10:00:00Z\n"
    "u-2,,7,SKU-2,2026-11-02T10:00:00Z\n"
    "u-3,,lots,SKU-3,2026-11-03T10:00:00Z\n"
)


def _add_member(runtime: Runtime, tenant: Tenant, email: str, role: Role) -> None:
    with runtime.sessions() as db:
        user = accounts_service.create_user(db, email=email, password=tenant.password)
        accounts_service.set_role(
            db, workspace_id=tenant.workspace_id, user_id=user.id, role=role, actor="test"
        )
        db.commit()


def _upload(client: TestClient, csrf: str, body: str, kind: str, name: str = "people.csv") -> str:
    """Upload a CSV and return the staged token the mapping page lives under."""
    answer = client.post(
        "/data/imports",
        data={"csrf_token": csrf, "kind": kind},
        files={"file": (name, io.BytesIO(body.encode()), "text/csv")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/data/imports/new/([0-9a-f]{32})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def _selected(html: str, index: int) -> str:
    select_html = re.search(rf'<select id="role-{index}".*?</select>', html, re.S)
    assert select_html
    chosen = re.search(r'<option value="([^"]+)" selected>', select_html.group(0))
    assert chosen
    return chosen.group(1)


def _audit_actions(runtime: Runtime, tenant: Tenant) -> list[str]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.workspace_id == tenant.workspace_id)
                .order_by(AuditEntry.id)
            )
        )


def test_the_data_landing_page_links_every_part(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/data")
    assert page.status_code == 200
    for href in ("/data/imports", "/data/traits", "/data/lifestyle", "/data/quarantine", "/data/products"):
        assert f'href="{href}"' in page.text
    imports = client.get("/data/imports").text
    assert "Only marketers and admins can import." in imports and 'type="file"' not in imports


def test_a_profile_csv_is_mapped_imported_as_a_job_and_reports_refused_rows(
    client: TestClient, app: FastAPI, tenant: Tenant, runtime: Runtime
) -> None:
    _add_member(runtime, tenant, "mia@acme.test", Role.MARKETER)
    csrf = ui_login(client, "mia@acme.test", tenant.password)
    token = _upload(client, csrf, PROFILES_CSV, "profiles")
    mapping_page = client.get(f"/data/imports/new/{token}")
    assert mapping_page.status_code == 200
    assert "3 customer rows" in mapping_page.text and "Ann Lee" in mapping_page.text
    assert [_selected(mapping_page.text, i) for i in range(7)] == [
        "id:user_id",
        "id:email",
        "id:phone",
        "trait",
        "trait",
        "trait",
        "trait",
    ]
    form = {
        "csrf_token": csrf,
        "role_0": "id:user_id",
        "role_1": "id:email",
        "role_2": "id:phone",
        "role_3": "trait",
        "name_3": "name",
        "role_4": "trait",
        "name_4": "",  # a trait needs a name
        "role_5": "id:external",
        "name_5": "crm",
        "role_6": "ignore",
    }
    refused = client.post(f"/data/imports/new/{token}", data=form)
    assert refused.status_code == 400
    assert 'class="is-invalid"' in refused.text and "type a name for it" in refused.text
    assert 'id="role-4" name="role_4" aria-invalid="true"' in refused.text
    clash = client.post(f"/data/imports/new/{token}", data={**form, "name_4": "email"})
    assert clash.status_code == 400 and "is read as an identifier or time" in clash.text
    no_id = client.post(
        f"/data/imports/new/{token}",
        data={
            "csrf_token": csrf,
            **{f"role_{i}": "trait" for i in range(7)},
            **{f"name_{i}": f"t{i}" for i in range(7)},
        },
    )
    assert no_id.status_code == 400 and "map at least one column to an identifier" in no_id.text
    with runtime.sessions() as db:
        assert db.scalars(select(Job).where(Job.kind == "collect.import")).all() == []

    started = client.post(
        f"/data/imports/new/{token}", data={**form, "name_4": "tier"}, follow_redirects=False
    )
    assert started.status_code == 303
    location = started.headers["location"]
    import_id = int(location.rsplit("/", 1)[1])
    waiting = client.get(location).text
    assert "Waiting to start" in waiting and f'hx-get="/data/imports/{import_id}/progress"' in waiting
    assert client.get(f"/data/imports/new/{token}").status_code == 404  # the staged file is used up

    app.state.worker.drain()
    progress = client.get(f"/data/imports/{import_id}/progress").text
    assert "Finished" in progress and "hx-trigger" not in progress
    counts = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", progress))
    assert "3 rows read" in counts and "2 imported" in counts and "1 refused" in counts
    errors = client.get(f"/data/imports/{import_id}/errors")
    assert errors.status_code == 200 and errors.headers["content-type"].startswith("text/csv")
    assert errors.text.splitlines() == ["row,column,reason", "3,email,not an email address"]
    with runtime.sessions() as db:
        ann = db.scalars(
            select(Profile).where(
                Profile.workspace_id == tenant.workspace_id, Profile.email == "ann@example.org"
            )
        ).one()
        assert ann.traits["tier"] == "gold" and ann.traits["name"] == "Ann Lee" and "Notes" not in ann.traits
        kinds = set(
            db.execute(select(Identity.kind, Identity.value).where(Identity.profile_id == ann.id)).all()
        )
        assert {("user_id", "c-1"), ("external:crm", "A-1"), ("phone", "+447911123456")} <= kinds
    assert "import.started" in _audit_actions(runtime, tenant)
    listing = client.get("/data/imports").text
    assert f'href="/data/imports/{import_id}"' in listing and "people.csv" in listing


def test_an_events_csv_becomes_typed_track_events(
    client: TestClient, app: FastAPI, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    token = _upload(client, csrf, EVENTS_CSV, "events", name="orders.csv")
    page = client.get(f"/data/imports/new/{token}").text
    guessed = [_selected(page, i) for i in range(5)]
    assert guessed == ["id:user_id", "id:email", "property", "property", "event:timestamp"]  # "lots" is text
    form = {
        "csrf_token": csrf,
        "event_type": "track",
        "event_name": "",
        "role_0": "id:user_id",
        "role_1": "id:email",
        "role_2": "property_number",
        "name_2": "total",
        "role_3": "property",
        "name_3": "sku",
        "role_4": "event:timestamp",
    }
    nameless = client.post(f"/data/imports/new/{token}", data=form)
    assert nameless.status_code == 400 and "track events need a name" in nameless.text
    started = client.post(
        f"/data/imports/new/{token}", data={**form, "event_name": "Order Completed"}, follow_redirects=False
    )
    assert started.status_code == 303
    import_id = int(started.headers["location"].rsplit("/", 1)[1])
    app.state.worker.drain()
    counts = re.sub(r"<[^>]+>", "", client.get(f"/data/imports/{import_id}/progress").text)
    assert "2 imported" in re.sub(r"\s+", " ", counts) and "1 refused" in re.sub(r"\s+", " ", counts)
    assert "lots" in client.get(f"/data/imports/{import_id}/errors").text
    with runtime.sessions() as db:
        rows = db.scalars(
            select(Event).where(Event.workspace_id == tenant.workspace_id).order_by(Event.user_id)
        ).all()
        assert [(e.type, e.event, e.user_id, e.properties) for e in rows] == [
            ("track", "Order Completed", "u-1", {"total": 12.5, "sku": "SKU-1"}),
            ("track", "Order Completed", "u-2", {"total": 7, "sku": "SKU-2"}),
        ]
        assert rows[0].timestamp.isoformat().startswith("2026-11-01T10:00")
        ann = db.get(Profile, rows[0].profile_id)
        assert ann is not None and ann.email == "ann@example.org"


def test_a_till_export_keyed_by_email_imports_onto_the_customers_profiles(
    client: TestClient, app: FastAPI, tenant: Tenant, runtime: Runtime
) -> None:
    # A point-of-sale export knows its customers by email, not by the website's user id.
    import_profile_rows(runtime, workspace_id=tenant.workspace_id, rows=[{"email": "ann@example.org"}])
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    till = "email,event,timestamp,total\nAnn@Example.org,Purchase,2026-11-01T10:00:00Z,12.50\n"
    till += "new@example.org,Purchase,2026-11-02T10:00:00Z,7\n,Purchase,2026-11-03T10:00:00Z,3\n"
    token = _upload(client, csrf, till, "events", name="till.csv")
    page = client.get(f"/data/imports/new/{token}").text
    assert _selected(page, 0) == "id:email"
    started = client.post(
        f"/data/imports/new/{token}",
        data={"csrf_token": csrf, "event_type": "track", "event_name": "", "role_0": "id:email",
              "role_1": "event:name", "role_2": "event:timestamp", "role_3": "property_number", "name_3": "total"},
        follow_redirects=False,
    )  # fmt: skip
    assert started.status_code == 303, started.text
    import_id = int(started.headers["location"].rsplit("/", 1)[1])
    app.state.worker.drain()
    counts = re.sub(
        r"\s+", " ", re.sub(r"<[^>]+>", "", client.get(f"/data/imports/{import_id}/progress").text)
    )
    assert "2 imported" in counts and "1 refused" in counts
    assert "or an email or phone trait is required" in client.get(f"/data/imports/{import_id}/errors").text
    with runtime.sessions() as db:
        by_email = {
            p.email: p for p in db.scalars(select(Profile).where(Profile.workspace_id == tenant.workspace_id))
        }
        assert set(by_email) == {"ann@example.org", "new@example.org"}  # Ann's own, and one made for new
        rows = db.scalars(
            select(Event).where(Event.workspace_id == tenant.workspace_id).order_by(Event.timestamp)
        ).all()
        assert [(e.event, e.profile_id, e.properties) for e in rows] == [
            ("Purchase", by_email["ann@example.org"].id, {"total": 12.5}),
            ("Purchase", by_email["new@example.org"].id, {"total": 7}),
        ]


def test_imports_are_refused_to_viewers_and_kept_to_their_workspace(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    token = _upload(client, csrf, PROFILES_CSV, "profiles")
    bad = client.post(
        "/data/imports",
        data={"csrf_token": csrf, "kind": "profiles"},
        files={"file": ("x.csv", io.BytesIO(b"a,,b\n1,2,3\n"), "text/csv")},
    )
    assert bad.status_code == 400 and "Column 2 has no name" in bad.text
    empty = client.post(
        "/data/imports",
        data={"csrf_token": csrf, "kind": "profiles"},
        files={"file": ("x.csv", io.BytesIO(b"email\n"), "text/csv")},
    )
    assert empty.status_code == 400 and "no data rows" in empty.text
    with TestClient(client.app) as other:
        other_csrf = ui_login(other, other_tenant.admin_email, other_tenant.password)
        assert other.get(f"/data/imports/new/{token}").status_code == 404
        assert other.post(f"/data/imports/new/{token}", data={"csrf_token": other_csrf}).status_code == 404
    with TestClient(client.app) as viewer:
        viewer_csrf = ui_login(viewer, tenant.viewer_email, tenant.password)
        answer = viewer.post(
            "/data/imports",
            data={"csrf_token": viewer_csrf, "kind": "profiles"},
            files={"file": ("x.csv", io.BytesIO(PROFILES_CSV.encode()), "text/csv")},
        )
        assert answer.status_code == 403
        assert viewer.post(f"/data/imports/new/{token}", data={"csrf_token": viewer_csrf}).status_code == 403


def test_mapping_guesses_and_event_messages() -> None:
    assert data_mapping.guess("E-mail", [], kind="profiles").role == "id:email"
    assert data_mapping.guess("external:shopify", [], kind="profiles") == data_mapping.ColumnChoice(
        "external:shopify", "id:external", "shopify"
    )
    assert data_mapping.guess("Basket value", ["1.5", "", "20"], kind="events") == data_mapping.ColumnChoice(
        "Basket value", "property_number", "basket_value"
    )
    assert data_mapping.guess("Zip", ["01234", "x"], kind="events").role == "property"
    choices = [
        data_mapping.ColumnChoice("u", "id:user_id"),
        data_mapping.ColumnChoice("tier", "trait", "tier"),
        data_mapping.ColumnChoice("page", "event:name"),
    ]
    assert data_mapping.event_message(
        {"u": "u1", "tier": "gold", "page": "Home"}, choices, event_type="page", event_name=""
    ) == {"type": "page", "userId": "u1", "name": "Home", "context": {"traits": {"tier": "gold"}}}
    assert data_mapping.event_message(
        {"u": "u1", "tier": "gold", "page": ""}, choices, event_type="identify", event_name=""
    ) == {"type": "identify", "userId": "u1", "traits": {"tier": "gold"}}


def test_computed_traits_are_created_edited_archived_and_recomputed_by_admins(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    listing = client.get("/data/traits").text
    assert "total_spend" in listing and "built-in" in listing
    form = {
        "csrf_token": csrf,
        "name": "web_orders_90d",
        "description": "Orders on the web",
        "event": "Order Completed",
        "aggregation": "sum",
        "property": "",
        "window_days": "90",
        "conditions": 'channel = web\ncategory in shoes, bags\ncode = "123"',
    }
    refused = client.post("/data/traits/new", data=form)
    assert refused.status_code == 400 and "aggregation 'sum' needs a property" in html.unescape(refused.text)
    assert 'value="web_orders_90d"' in refused.text  # what was typed stays
    bad_line = client.post(
        "/data/traits/new", data={**form, "property": "total", "conditions": "channel web"}
    )
    assert bad_line.status_code == 400 and "condition line 1" in bad_line.text
    # an over-long field comes back in the form, input kept, not as a generic error page
    huge_window = client.post("/data/traits/new", data={**form, "window_days": "100000000000000000000"})
    assert huge_window.status_code == 400 and "The window is 21 characters long" in huge_window.text
    assert 'value="web_orders_90d"' in huge_window.text
    long_conditions = "\n".join(f"code = {n}" for n in range(700))  # ~7,000 characters
    too_many = client.post(
        "/data/traits/new", data={**form, "property": "total", "conditions": long_conditions}
    )
    assert too_many.status_code == 400 and "at most 5,000 are allowed" in too_many.text
    assert "code = 699" in too_many.text
    created = client.post("/data/traits/new", data={**form, "property": "total"}, follow_redirects=False)
    assert created.status_code == 303
    with runtime.sessions() as db:
        row = db.scalars(
            select(ComputedTrait).where(
                ComputedTrait.workspace_id == tenant.workspace_id, ComputedTrait.name == "web_orders_90d"
            )
        ).one()
        assert row.conditions == [
            {"property": "channel", "op": "=", "value": "web"},
            {"property": "category", "op": "in", "value": ["shoes", "bags"]},
            {"property": "code", "op": "=", "value": "123"},
        ]
        assert row.window_days == 90 and row.property == "total"
        trait_id = row.id
    edit = client.get(f"/data/traits/{trait_id}").text
    assert 'code = "123"' in html.unescape(edit)
    changed = client.post(
        f"/data/traits/{trait_id}",
        data={**form, "aggregation": "count", "property": "", "window_days": "", "conditions": ""},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    with runtime.sessions() as db:
        row = traits_service.get_definition(db, workspace_id=tenant.workspace_id, trait_id=trait_id)
        assert (row.aggregation, row.window_days, row.conditions, row.version) == ("count", None, [], 2)
    archived = client.post(
        f"/data/traits/{trait_id}/archive", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert archived.status_code == 303
    row_id = f'id="trait-{trait_id}"'
    assert "is archived" in client.get("/data/traits").text
    assert row_id not in client.get("/data/traits").text
    assert row_id in client.get("/data/traits?archived=true").text
    client.post(f"/data/traits/{trait_id}/restore", data={"csrf_token": csrf})
    assert row_id in client.get("/data/traits").text

    first = client.post("/data/traits/recompute", data={"csrf_token": csrf})
    assert "Recompute queued" in first.text
    assert (
        "already queued or running" in client.post("/data/traits/recompute", data={"csrf_token": csrf}).text
    )
    with runtime.sessions() as db:
        jobs = db.scalars(
            select(Job).where(
                Job.kind == traits_service.RECOMPUTE_JOB, Job.workspace_id == tenant.workspace_id
            )
        ).all()
        assert sum(1 for j in jobs if not j.payload.get("names")) == 1
    assert 'data-testid="last-recompute">' in first.text and "queued" in first.text
    actions = _audit_actions(runtime, tenant)
    for action in ("created", "updated", "archived", "restored", "recompute_requested"):
        assert f"computed_trait.{action}" in actions


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_non_admins_cannot_change_traits_or_lifestyle_tables(
    client: TestClient, tenant: Tenant, runtime: Runtime, role: Role
) -> None:
    email = f"{role.value}9@acme.test"
    if role is not Role.VIEWER:
        _add_member(runtime, tenant, email, role)
    csrf = ui_login(client, email if role is not Role.VIEWER else tenant.viewer_email, tenant.password)
    page = client.get("/data/traits").text
    assert "Only admins can change computed traits." in page and "Recompute all" not in page
    assert "Only admins can upload or delete lifestyle tables." in client.get("/data/lifestyle").text
    with runtime.sessions() as db:
        trait_id = traits_service.list_definitions(db, workspace_id=tenant.workspace_id)[0].id
    for path, data in [
        ("/data/traits/new", {"name": "x", "event": "*", "aggregation": "count"}),
        (f"/data/traits/{trait_id}/archive", {}),
        ("/data/traits/recompute", {}),
        ("/data/lifestyle/1/delete", {}),
    ]:
        answer = client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=False)
        assert answer.status_code == 403, path
    with runtime.sessions() as db:
        assert traits_service.list_definitions(db, workspace_id=tenant.workspace_id)[0].archived_at is None


def test_lifestyle_tables_are_uploaded_listed_and_deleted(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    table = "postcode,group,income\nLS1,Urban renters,31000\nLS,Northern towns,27000\n"
    saved = client.post(
        "/data/lifestyle",
        data={"csrf_token": csrf, "name": "mosaic"},
        files={"file": ("m.csv", io.BytesIO(table.encode()), "text/csv")},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    page = client.get("/data/lifestyle").text
    assert "Table mosaic is saved (2 keys)" in page and "income" in page
    bad = client.post(
        "/data/lifestyle",
        data={"csrf_token": csrf, "name": ""},
        files={"file": ("m.csv", io.BytesIO(table.encode()), "text/csv")},
    )
    assert bad.status_code == 400 and "name must be 1-100 characters" in bad.text
    # a spreadsheet saved as Windows-1252 (Excel's usual CSV) is refused in words, not with a 500
    legacy = client.post(
        "/data/lifestyle",
        data={"csrf_token": csrf, "name": "mosaic"},
        files={
            "file": ("m.csv", io.BytesIO("postcode,group\nLS1,Café society\n".encode("cp1252")), "text/csv")
        },
    )
    assert legacy.status_code == 400 and "not UTF-8 text" in legacy.text
    with runtime.sessions() as db:
        (found,) = lifestyle.list_tables(db, workspace_id=tenant.workspace_id)
        assert found.columns == ["group", "income"]  # the saved table is untouched
    deleted = client.post(
        f"/data/lifestyle/{found.id}/delete", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert deleted.status_code == 303
    with runtime.sessions() as db:
        assert lifestyle.list_tables(db, workspace_id=tenant.workspace_id) == []
    actions = _audit_actions(runtime, tenant)
    assert "lifestyle.table_saved" in actions and "lifestyle.table_deleted" in actions


def test_quarantined_events_are_listed_corrected_and_replayed(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    batch = {
        "batch": [
            {"type": "track", "messageId": "q-1", "event": "No Identity"},
            {"type": "track", "messageId": "q-2", "userId": "u2", "event": "E", "properties": "oops"},
            {"type": "track", "messageId": "ok-1", "userId": "u1", "event": "Fine"},
        ]
    }
    assert client.post("/v1/batch", json=batch, headers=tenant.write_headers).status_code == 200
    with runtime.sessions() as db:
        rows = quarantine_service.list_quarantined(db, workspace_id=tenant.workspace_id, page=Page(10, 0))
        ids = {quarantine_service.payload_of(r)["messageId"]: r.id for r in rows}
    viewer_csrf = ui_login(client, tenant.viewer_email, tenant.password)
    listing = client.get("/data/quarantine").text
    assert "userId or anonymousId is required" in listing and "properties: must be an object" in listing
    assert "Replay all waiting" not in listing
    detail = client.get(f"/data/quarantine/{ids['q-1']}").text
    assert '"messageId": "q-1"' in html.unescape(detail)
    assert (
        client.post(f"/data/quarantine/{ids['q-1']}/replay", data={"csrf_token": viewer_csrf}).status_code
        == 403
    )
    client.post("/logout", data={"csrf_token": viewer_csrf})
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    still = client.post(f"/data/quarantine/{ids['q-1']}/replay", data={"csrf_token": csrf})
    assert "is still invalid" in still.text
    not_json = client.post(
        f"/data/quarantine/{ids['q-1']}/payload", data={"csrf_token": csrf, "payload": "{oops"}
    )
    assert not_json.status_code == 400 and "Not JSON" in not_json.text and "{oops" in not_json.text
    fixed = '{"type": "track", "messageId": "q-1", "event": "No Identity", "userId": "u9"}'
    saved = client.post(f"/data/quarantine/{ids['q-1']}/payload", data={"csrf_token": csrf, "payload": fixed})
    assert "corrected payload is saved" in saved.text
    stored = client.post(f"/data/quarantine/{ids['q-1']}/replay", data={"csrf_token": csrf})
    assert "is stored as q-1" in stored.text
    everything = client.post("/data/quarantine/replay", data={"csrf_token": csrf})
    assert "Replayed 1: 0 stored, 1 still invalid." in everything.text
    with runtime.sessions() as db:
        messages = set(db.scalars(select(Event.message_id).where(Event.workspace_id == tenant.workspace_id)))
    assert messages == {"ok-1", "q-1"}
    assert "Nothing in quarantine." not in client.get("/data/quarantine").text
    actions = _audit_actions(runtime, tenant)
    assert "quarantine.payload_edited" in actions and actions.count("quarantine.replayed") == 3
