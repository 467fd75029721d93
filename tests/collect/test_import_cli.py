"""``rapport import profiles|events`` and ``rapport profiles export|erase`` in process, on both databases;
and erasure holding against SDK traffic sent through the real tracking API (R17)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from rapport.cli import app as cli
from rapport.models import AuditEntry
from rapport.runtime import Runtime
from tests.collect.processing_support import events, identities, live_profiles
from tests.support.tenants import Tenant


def _run(runtime: Runtime, *args: str) -> str:
    env = {
        "RAPPORT_DATABASE_URL": runtime.settings.database_url,
        "RAPPORT_SECRET_KEY": "x" * 32,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_imports_exports_and_erases(runtime: Runtime, tenant: Tenant, tmp_path: Path) -> None:
    ws = tenant.workspace_id
    people = tmp_path / "people.csv"
    people.write_text("ID,Mail,Tier\nu1,one@x.io,gold\nu2,two@x.io,free\nu3,broken,free\n", encoding="utf-8")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"ID": "user_id", "Mail": "email"}), encoding="utf-8")
    out = _run(runtime, "import", "profiles", str(people), "--mapping", str(mapping), "-w", "acme")
    assert "refused rows" in out
    report = list(csv.reader((tmp_path / "people.csv.errors.csv").open()))
    assert report == [["row", "column", "reason"], ["3", "email", "not an email address"]]
    assert len(live_profiles(runtime, ws)) == 2

    lines = [
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"revenue": 9}},
        {"type": "track", "userId": "u9", "event": "Viewed"},
    ]
    feed = tmp_path / "feed.ndjson"
    feed.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    _run(runtime, "import", "events", str(feed), "-w", "acme")
    assert not (tmp_path / "feed.ndjson.errors.csv").exists()  # no refused rows, no report left behind
    _run(runtime, "import", "events", str(feed), "-w", "acme")  # idempotent
    assert len(events(runtime, ws)) == 2

    u1 = identities(runtime, ws)[("user_id", "u1")]
    exported = tmp_path / "u1.json"
    _run(runtime, "profiles", "export", str(u1), "-o", str(exported), "-w", "acme")
    data = json.loads(exported.read_text())
    assert data["profile"]["traits"]["Tier"] == "gold" and len(data["events"]) == 1

    out = _run(runtime, "profiles", "erase", str(u1), "--yes", "-w", "acme")
    assert "2 identifiers suppressed" in out
    _run(
        runtime, "import", "profiles", str(people), "--map", "ID=user_id", "--map", "Mail=email", "-w", "acme"
    )
    assert ("user_id", "u1") not in identities(runtime, ws)
    with runtime.read_sessions() as db:
        actions = sorted(db.scalars(select(AuditEntry.action).where(AuditEntry.workspace_id == ws)))
    assert actions.count("profile.erased") == 1 and actions.count("profile.exported") == 1


def test_erased_person_stays_erased_against_sdk_traffic(
    client: TestClient, app: FastAPI, runtime: Runtime, tenant: Tenant
) -> None:
    batch = {
        "batch": [
            {"type": "identify", "userId": "gone", "anonymousId": "dev-7", "traits": {"email": "gone@x.io"}},
            {"type": "track", "userId": "gone", "event": "Order Completed"},
            {"type": "identify", "userId": "stays", "traits": {"email": "stays@x.io"}},
        ]
    }
    assert client.post("/v1/batch", json=batch, headers=tenant.write_headers).status_code == 200
    app.state.worker.drain()
    gone = identities(runtime, tenant.workspace_id)[("user_id", "gone")]
    erased = client.delete(f"/api/v1/profiles/{gone}", headers=tenant.secret_headers)
    assert erased.status_code == 200, erased.text
    replay = {
        "batch": [
            {"type": "track", "userId": "gone", "event": "Viewed"},
            {"type": "page", "anonymousId": "dev-7", "name": "Home"},
            {"type": "identify", "userId": "new-login", "traits": {"email": "GONE@x.io"}},
        ]
    }
    assert client.post("/v1/batch", json=replay, headers=tenant.write_headers).status_code == 200
    app.state.worker.drain()
    assert [p.email for p in live_profiles(runtime, tenant.workspace_id)] == ["stays@x.io"]
    assert {e.user_id for e in events(runtime, tenant.workspace_id)} == {"stays"}
