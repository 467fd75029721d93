"""Campaigns pages through the TestClient: a broadcast made step by step in the form, reviewed with its
audience estimate, launched, sent through the worker to the SMTP sink, and its results; triggered and
date-relative forms; errors kept in the form; viewers read-only; CSRF on every post."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.runtime import Runtime
from tests.campaigns.conftest import make_segment, run_worker
from tests.messaging import conftest as messaging_fixtures
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

# the messaging fixtures: a real SMTP sink and the email channel pointed at it
settings = messaging_fixtures.settings
sink = messaging_fixtures.sink
email_channel = messaging_fixtures.email_channel


def _template(client: TestClient, tenant: Tenant, name: str, subject: str) -> int:
    answer = client.post(
        "/api/v1/templates",
        json={
            "name": name,
            "channel": "email",
            "content": {"subject": subject, "html": "<p>Hi {{ first_name }}</p>"},
        },
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _form(csrf: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "csrf_token": csrf,
        "kind": "broadcast",
        "channel": "email",
        "control_percent": "0",
        "goal_event": "order_completed",
        "goal_days": "7",
        "when": "now",
    }
    return {**base, **fields}


def test_a_broadcast_from_the_form_to_the_sink_and_its_results(
    client: TestClient, app: FastAPI, runtime: Runtime, tenant: Tenant, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 5, extra={"city": "Leeds"})
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    first = _template(client, tenant, "Autumn A", "Autumn A {{ first_name }}")
    second = _template(client, tenant, "Autumn B", "Autumn B {{ first_name }}")
    csrf = ui_login(client, tenant.admin_email, tenant.password)

    page = client.get("/campaigns/new")
    assert page.status_code == 200 and "Autumn A (email)" in page.text and "Leeds" in page.text

    refused = client.post(
        "/campaigns/new", data=_form(csrf, name="No segment", variant_A_template=str(first))
    )
    assert refused.status_code == 400 and "A broadcast needs at least one segment" in refused.text
    assert 'value="No segment"' in refused.text  # what was typed stays

    form = _form(csrf, name="Autumn", segment_ids=str(segment_id), variant_A_template=str(first),
                 variant_B_template=str(second), variant_B_weight="1")  # fmt: skip
    created = client.post("/campaigns/new", data=form, follow_redirects=False)
    assert created.status_code == 303, created.text
    found = re.fullmatch(r"/campaigns/(\d+)", created.headers["location"])
    assert found
    cid = int(found.group(1))

    review = client.get(f"/campaigns/{cid}")
    assert 'data-testid="audience-total">5<' in review.text
    assert 'data-testid="audience-reachable">5<' in review.text
    assert "Launch and send now" in review.text

    no_csrf = client.post(f"/campaigns/{cid}/action", data={"action": "launch"}, follow_redirects=False)
    assert no_csrf.status_code == 403
    launched = client.post(f"/campaigns/{cid}/action", data={"csrf_token": csrf, "action": "launch"},
                           follow_redirects=False)  # fmt: skip
    assert launched.status_code == 303
    run_worker(app)
    assert len(sink.wait_for(5)) == 5
    subjects = sorted(m.parsed()["Subject"].split(" ")[1] for m in sink.messages)
    assert set(subjects) <= {"A", "B"}

    results = client.get(f"/campaigns/{cid}/results")
    assert 'data-testid="results-sent">5<' in results.text
    assert 'data-status="sent"' in results.text
    listing = client.get("/campaigns")
    assert f'href="/campaigns/{cid}"' in listing.text and "sent" in listing.text


def test_triggered_and_date_relative_forms_make_their_triggers(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    template = _template(client, tenant, "Thanks", "Thanks")
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    triggered = client.post(
        "/campaigns/new",
        data=_form(
            csrf,
            name="Big orders",
            kind="triggered",
            trigger_type="event",
            trigger_event="order_completed",
            trigger_where="total > 100",
            trigger_max_age_hours="6",
            delay_minutes="30",
            reentry="every",
            reentry_days="14",
            variant_A_template=str(template),
        ),
        follow_redirects=False,
    )
    assert triggered.status_code == 303, triggered.text
    body = client.get("/api/v1/campaigns", headers=tenant.secret_headers).json()
    [big] = [c for c in body if c["name"] == "Big orders"]
    assert big["trigger"] == {"type": "event", "event": "order_completed", "where": "total > 100",
                              "max_age_hours": 6.0, "offset_days": 0, "anniversary": False}  # fmt: skip
    assert (big["delay_seconds"], big["reentry"], big["reentry_days"]) == (1800, "every", 14)

    dated = client.post(
        "/campaigns/new",
        data=_form(
            csrf,
            name="Birthday",
            kind="date_relative",
            date_trait="birthday",
            date_offset_days="0",
            date_at="10:30",
            date_anniversary="on",
            variant_A_template=str(template),
        ),
        follow_redirects=False,
    )
    assert dated.status_code == 303, dated.text
    body = client.get("/api/v1/campaigns", headers=tenant.secret_headers).json()
    [birthday] = [c for c in body if c["name"] == "Birthday"]
    assert birthday["trigger"] == {"type": "date", "trait": "birthday", "offset_days": 0, "at": "10:30",
                                   "anniversary": True}  # fmt: skip
    bad = client.post("/campaigns/new", data=_form(csrf, name="Oops", kind="triggered", trigger_type="event",
                                                   trigger_event="x", trigger_where="total >",
                                                   variant_A_template=str(template)))  # fmt: skip
    assert bad.status_code == 400 and "Trigger where: line 1" in bad.text


def test_viewers_see_campaigns_but_cannot_change_them(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    template = _template(client, tenant, "T", "Hi")
    admin_csrf = ui_login(client, tenant.admin_email, tenant.password)
    client.post("/campaigns/new", data=_form(admin_csrf, name="Watch", kind="triggered", trigger_type="event",
                                             trigger_event="x", variant_A_template=str(template)))  # fmt: skip
    client.cookies.clear()
    csrf = ui_login(client, tenant.viewer_email, tenant.password)
    listing = client.get("/campaigns")
    assert listing.status_code == 200 and "Watch" in listing.text and "New campaign" not in listing.text
    cid = client.get("/api/v1/campaigns", headers=tenant.secret_headers).json()[0]["id"]
    page = client.get(f"/campaigns/{cid}")
    assert page.status_code == 200 and 'value="launch"' not in page.text
    refused = client.post(f"/campaigns/{cid}/action", data={"csrf_token": csrf, "action": "launch"})
    assert refused.status_code == 403
    assert client.get("/api/v1/campaigns", headers=tenant.secret_headers).json()[0]["status"] == "draft"
