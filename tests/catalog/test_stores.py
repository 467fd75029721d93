"""The workspace's stores: replaced whole through the API (settings scope, every row checked, audited) and
the CLI (CSV or JSON), then read by the segment language (``within … of store``) and by templates
(``{{ store.* }}``: the nearest, in a preview)."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rapport.accounts import service as accounts_service
from rapport.cli import app as cli_app
from rapport.models import AuditEntry
from rapport.runtime import Runtime
from tests.campaigns.conftest import run_worker
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

STORES = [
    {"id": "st-lds", "name": "Leeds Briggate", "lat": 53.798, "lon": -1.543, "city": "Leeds", "opens_at": "09:00",
     "opening_hours": {"sat": "10:00-16:00"}},
    {"id": "st-york", "name": "York Coney Street", "latitude": "53.9583", "longitude": -1.0841},
]  # fmt: skip


def _key(runtime: Runtime, tenant: Tenant, *scopes: str) -> dict[str, str]:
    with runtime.sessions() as db:
        issued = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="k", scopes=list(scopes), actor="test"
        )
        db.commit()
    return {"Authorization": f"Bearer {issued.plain}"}


def test_the_api_replaces_the_stores_whole_and_checks_every_row(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    saved = client.put("/api/v1/stores", json=STORES, headers=tenant.secret_headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["stores"] == [
        {"id": "st-lds", "name": "Leeds Briggate", "latitude": 53.798, "longitude": -1.543, "city": "Leeds",
         "opens_at": "09:00", "opening_hours": {"sat": "10:00-16:00"}},
        {"id": "st-york", "name": "York Coney Street", "latitude": 53.9583, "longitude": -1.0841},
    ]  # fmt: skip
    listed = client.get("/api/v1/stores", headers=tenant.secret_headers)
    assert listed.json() == saved.json()

    bad = [
        {"name": "Ok", "latitude": 1, "longitude": 2},
        {"name": "", "latitude": 95, "longitude": "east", "opens_at": "9am", "colour": "red"},
        {"name": "ok", "latitude": 1, "longitude": 2},
        "a string",
    ]
    refused = client.put("/api/v1/stores", json=bad, headers=tenant.secret_headers)
    assert refused.status_code == 400
    details = {(d["row"], d["field"]) for d in refused.json()["error"]["details"]}
    assert details == {(1, "colour"), (1, "name"), (1, "latitude"), (1, "longitude"), (1, "opens_at"),
                       (2, "name"), (3, "")}  # fmt: skip
    assert client.get("/api/v1/stores", headers=tenant.secret_headers).json() == saved.json()  # unchanged

    marketer = _key(runtime, tenant, "campaigns:read", "campaigns:write")
    assert client.get("/api/v1/stores", headers=marketer).status_code == 200
    assert client.put("/api/v1/stores", json=STORES, headers=marketer).status_code == 403
    assert client.put("/api/v1/stores", json=[], headers=tenant.write_headers).status_code in (401, 403)
    with runtime.read_sessions() as db:
        entries = (
            db.query(AuditEntry).filter_by(workspace_id=tenant.workspace_id, action="stores.replace").all()
        )
    assert [(e.details["before"], e.details["after"]) for e in entries] == [(0, 2)]


def test_the_cli_imports_csv_or_json_and_refuses_a_bad_file_whole(
    client: TestClient, runtime: Runtime, tenant: Tenant, tmp_path: Path, db_url: str
) -> None:
    source = tmp_path / "stores.csv"
    source.write_text(
        "id,name,latitude,longitude,city\nst-lds,Leeds Briggate,53.798,-1.543,Leeds\n"
        "st-york,York Coney Street,53.9583,-1.0841,York\n",
        encoding="utf-8",
    )
    args = ["--database-url", db_url, "--workspace", tenant.slug]
    done = CliRunner().invoke(cli_app, ["stores", "import", str(source), *args])
    assert done.exit_code == 0, done.output
    assert "2 stores" in done.output
    listed = CliRunner().invoke(cli_app, ["stores", "list", *args])
    assert "Leeds Briggate" in listed.output and "York Coney Street" in listed.output

    bad = tmp_path / "bad.csv"
    bad.write_text("name,latitude,longitude\nA,1,2\nB,north,2\n", encoding="utf-8")
    refused = CliRunner().invoke(cli_app, ["stores", "import", str(bad), *args])
    assert refused.exit_code == 1 and "nothing changed" in refused.output and "latitude" in refused.output
    as_json = tmp_path / "stores.json"
    as_json.write_text(json.dumps({"stores": STORES[:1]}), encoding="utf-8")
    assert CliRunner().invoke(cli_app, ["stores", "import", str(as_json), *args]).exit_code == 0
    names = [s["name"] for s in client.get("/api/v1/stores", headers=tenant.secret_headers).json()["stores"]]
    assert names == ["Leeds Briggate"]  # replaced whole; the bad file changed nothing before it


def test_segments_and_templates_read_the_stores(client: TestClient, tenant: Tenant, app: FastAPI) -> None:
    assert client.put("/api/v1/stores", json=STORES, headers=tenant.secret_headers).status_code == 200
    people = [("near", 53.8008, -1.5491), ("far", 51.5, -0.12)]
    batch = [{"type": "identify", "userId": u, "traits": {"email": f"{u}@x.io", "latitude": lat, "longitude": lon}}
             for u, lat, lon in people]  # fmt: skip
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    preview = client.post(
        "/api/v1/segments/preview",
        json={"text": 'within 5 km of store "Leeds Briggate"'},
        headers=tenant.secret_headers,
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 1
    made = client.post("/api/v1/templates", headers=tenant.secret_headers, json={
        "name": "Nearest", "channel": "sms",
        "body": "x", "content": {"body": "{{ store.name }} {{ store.distance_km }} km, {{ store.opening_hours.sat }}"},
    })  # fmt: skip
    assert made.status_code == 201, made.text
    shown = {}
    for user in ("near", "far"):
        answer = client.post(f"/api/v1/templates/{made.json()['id']}/preview", json={"user_id": user},
                             headers=tenant.secret_headers)  # fmt: skip
        assert answer.status_code == 200, answer.text
        shown[user] = answer.json()["items"][0]["parts"]["body"]
    assert shown == {
        "near": "Leeds Briggate 0.5 km, 10:00-16:00",
        "far": "Leeds Briggate 272.9 km, 10:00-16:00",
    }


def _upload(client: TestClient, csrf: str, name: str, body: str) -> object:
    return client.post(
        "/settings/stores",
        data={"csrf_token": csrf},
        files={"file": (name, body.encode(), "text/csv")},
        follow_redirects=True,
    )


def test_the_settings_page_lists_stores_and_admins_replace_them_by_upload(
    client: TestClient, tenant: Tenant
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    assert "No stores yet." in client.get("/settings/stores").text
    bad = _upload(client, csrf, "bad.csv", "name,latitude,longitude\nA,1,2\nB,north,2\n")
    assert bad.status_code == 400  # type: ignore[attr-defined]
    problems = bad.text.split('data-testid="stores-problems"')[1]  # type: ignore[attr-defined]
    assert "<td>3</td><td>latitude</td><td>required, a number</td>" in problems
    assert "nothing was changed" in bad.text and "No stores yet." in bad.text  # type: ignore[attr-defined]
    good = _upload(
        client, csrf, "stores.csv", "id,name,lat,lon,city\nst-lds,Leeds Briggate,53.798,-1.543,Leeds\n"
    )
    assert good.status_code == 200 and "Stores saved: 1." in good.text  # type: ignore[attr-defined]
    table = good.text.split('data-testid="stores-table"')[1]  # type: ignore[attr-defined]
    assert "Leeds Briggate" in table and "53.798, -1.543" in table
    client.post("/logout", data={"csrf_token": csrf})
    viewer = ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/settings/stores")
    assert "Leeds Briggate" in page.text and 'type="file"' not in page.text
    refused = _upload(client, viewer, "stores.csv", "name,latitude,longitude\nX,1,2\n")
    assert refused.status_code == 403  # type: ignore[attr-defined]
    assert [
        s["name"] for s in client.get("/api/v1/stores", headers=tenant.secret_headers).json()["stores"]
    ] == ["Leeds Briggate"]


def test_no_list_removes_every_store_or_a_store_a_segment_uses_unless_asked(
    client: TestClient, tenant: Tenant, tmp_path: Path, db_url: str
) -> None:
    headers = tenant.secret_headers
    assert client.put("/api/v1/stores", json=STORES, headers=headers).status_code == 200
    made = client.post(
        "/api/v1/segments",
        json={"name": "Near Leeds", "text": 'within 5 km of store "Leeds Briggate"'},
        headers=headers,
    )
    assert made.status_code == 201, made.text

    def names() -> list[str]:
        return [s["name"] for s in client.get("/api/v1/stores", headers=headers).json()["stores"]]

    # an empty upload or list is refused (a header-only CSV is a mistake far more often than a wish)
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    for body in ("", "id,name,latitude,longitude\n"):
        empty = _upload(client, csrf, "stores.csv", body)
        assert empty.status_code == 400 and "has no stores" in empty.text  # type: ignore[attr-defined]
    refused = client.put("/api/v1/stores", json=[], headers=headers)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "no_stores"
    assert names() == ["Leeds Briggate", "York Coney Street"]

    # a list without the store a segment places customers by: 409 naming both, nothing changed
    york_only = "name,latitude,longitude\nYork Coney Street,53.9583,-1.0841\n"
    in_use = _upload(client, csrf, "stores.csv", york_only)
    assert in_use.status_code == 409  # type: ignore[attr-defined]
    assert "Leeds Briggate" in in_use.text and "Near Leeds" in in_use.text  # type: ignore[attr-defined]
    conflict = client.put("/api/v1/stores", json=STORES[1:], headers=headers)
    assert conflict.status_code == 409
    assert conflict.json()["error"]["details"] == [{"store": "Leeds Briggate", "segments": ["Near Leeds"]}]
    source = tmp_path / "york.csv"
    source.write_text(york_only, encoding="utf-8")
    args = ["--database-url", db_url, "--workspace", tenant.slug]
    cli = CliRunner().invoke(cli_app, ["stores", "import", str(source), *args])
    assert cli.exit_code == 1 and "Near Leeds" in cli.output
    assert names() == ["Leeds Briggate", "York Coney Street"]

    # dropping a store nobody uses is fine; once the segment is gone, so is removing every store, if asked
    assert client.put("/api/v1/stores", json=STORES[:1], headers=headers).status_code == 200
    segment_id = made.json()["id"]
    assert client.delete(f"/api/v1/segments/{segment_id}", headers=headers).status_code in (200, 204)
    cleared = client.put("/api/v1/stores", params={"allow_empty": "true"}, json=[], headers=headers)
    assert cleared.status_code == 200 and names() == []
