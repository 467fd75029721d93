"""Customers pages over HTTP on both databases: search (indexed kinds, pagination, isolation), the profile
page, the timeline's "load more", and the GDPR export and erasure with their role and CSRF rules."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.app import wire_runtime
from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.consent import service as consent_service
from rapport.messaging import service as messaging_service
from rapport.models import AuditEntry, Identity, Profile
from rapport.process import scores_service
from rapport.runtime import Runtime
from tests.support.tenants import Tenant
from tests.web.ui import csrf_of, ui_login

# Members made here get the fixture's cheap argon2 cost (the tenant's own users share a full-cost hash).
MARKETER = "marketer@acme.test"
ADMIN = "boss@acme.test"
VIEWER = "look@acme.test"


@dataclass(frozen=True)
class Seeded:
    """Ids of the seeded customers."""

    olivia: int
    oliver: int
    anonymous: int
    other: int


def _pid(runtime: Runtime, workspace_id: int, user_id: str) -> int:
    with runtime.sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == workspace_id, Identity.kind == "user_id", Identity.value == user_id
            )
        )
        assert pid is not None
        return int(pid)


def _event(n: int, user: str, name: str, day: str, channel: str = "web") -> dict[str, object]:
    return {
        "type": "track",
        "event": name,
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": f"{day}T10:{n % 60:02d}:00Z",
        "properties": {"total": 20 + n, "order_id": f"o{n}"},
        "context": {"channel": channel},
    }


@pytest.fixture
def seeded(runtime: Runtime, tenant: Tenant, other_tenant: Tenant) -> Seeded:
    """Two Oli* customers with orders, consent and scores, 30 "Zed" customers, an anonymous one, and a
    customer of another workspace; a marketer member."""
    wire_runtime(runtime)
    now = runtime.clock.now()
    rows: list[dict[str, object]] = [
        {"user_id": "u-olivia", "email": "olivia.smith@example.com", "phone": "+447911123456",
         "name": "Olivia Smith", "plan": "gold"},
        {"user_id": "u-oliver", "email": "oliver.jones@example.com", "name": "Oliver Jones"},
    ]  # fmt: skip
    rows += [{"user_id": f"u-zed-{n:02d}", "name": f"Zed {n:02d}"} for n in range(30)]
    assert import_profile_rows(runtime, workspace_id=tenant.workspace_id, rows=rows).failed == 0
    import_profile_rows(
        runtime,
        workspace_id=other_tenant.workspace_id,
        rows=[{"user_id": "u-olivia", "email": "olivia.smith@example.com", "name": "Olivia Elsewhere"}],
    )
    today = now.date()
    events = [
        _event(n, "u-olivia", "order_completed", (today - timedelta(days=1 + n * 20)).isoformat())
        for n in range(3)
    ]
    events += [
        _event(10 + n, "u-olivia", "product_viewed", (today - timedelta(days=1)).isoformat())
        for n in range(30)
    ]
    events += [_event(50, "u-oliver", "order_completed", (today - timedelta(days=200)).isoformat())]
    events.append(
        {"type": "page", "name": "Home", "anonymousId": "anon-1", "messageId": "anon-1-0",
         "timestamp": f"{(today - timedelta(days=1)).isoformat()}T08:00:00Z"}
    )  # fmt: skip
    report = import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=events)
    assert report.failed == 0
    olivia = _pid(runtime, tenant.workspace_id, "u-olivia")
    with runtime.sessions() as db:
        for channel, action in (("email", "granted"), ("sms", "withdrawn")):
            statement = consent_service.Statement(
                channel=channel, action=action, source="test", actor="test", wording=f"{channel} wording"
            )
            consent_service.record(
                db, workspace_id=tenant.workspace_id, profile_id=olivia, statement=statement, now=now
            )
        for email, role in ((MARKETER, Role.MARKETER), (ADMIN, Role.ADMIN), (VIEWER, Role.VIEWER)):
            user = accounts_service.create_user(db, email=email, password=tenant.password)
            accounts_service.set_role(
                db, workspace_id=tenant.workspace_id, user_id=user.id, role=role, actor="test"
            )
        messaging_service.enqueue(
            db, workspace_id=tenant.workspace_id, profile_id=olivia, channel="email",
            content={"subject": "Hello", "text": "Hi"}, dedupe_key="m-1", now=now, kind="service",
        )  # fmt: skip
        messaging_service.enqueue(
            db, workspace_id=tenant.workspace_id, profile_id=olivia, channel="sms",
            content={"body": "Sale"}, dedupe_key="m-2", now=now, campaign_id=424242, variant="B",
        )  # fmt: skip
        anonymous = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == "anon-1"
            )
        )
        db.commit()
    scores_service.run_scores(runtime, tenant.workspace_id, ["rfm"], now)
    return Seeded(
        olivia=olivia,
        oliver=_pid(runtime, tenant.workspace_id, "u-oliver"),
        anonymous=int(anonymous or 0),
        other=_pid(runtime, other_tenant.workspace_id, "u-olivia"),
    )


def _names(html: str) -> list[str]:
    table = html.split('data-testid="customer-results"', 1)
    if len(table) == 1:
        return []
    return re.findall(r'<a href="/customers/\d+">([^<]+)</a>', table[1].split("</table>", 1)[0])


SEARCHES: list[tuple[str, list[str]]] = [
    ("oli", ["Oliver Jones", "Olivia Smith"]),
    ("OLIVIA", ["Olivia Smith"]),
    ("olivia smith", ["Olivia Smith"]),
    ("olivia.smith@example.com", ["Olivia Smith"]),
    ("  Olivia.Smith@Example.com ", ["Olivia Smith"]),
    ("oliver.j", ["Oliver Jones"]),
    ("+447911123456", ["Olivia Smith"]),
    ("+44 7911 123", ["Olivia Smith"]),
    ("u-oliver", ["Oliver Jones"]),
    ("smith", []),
    ("nobody@example.com", []),
    ("%", []),
    ("o_i", []),
]


def test_search_finds_customers_by_name_email_phone_and_user_id_in_this_workspace_only(
    client: TestClient, tenant: Tenant, seeded: Seeded
) -> None:
    ui_login(client, VIEWER, tenant.password)
    for query, expected in SEARCHES:
        page = client.get("/customers", params={"q": query})
        assert page.status_code == 200
        assert _names(page.text) == expected, query
        assert "Olivia Elsewhere" not in page.text
        assert ('data-testid="no-results"' in page.text) == (not expected)


def test_search_by_id_marks_how_it_matched_and_ignores_other_workspaces(
    client: TestClient, tenant: Tenant, seeded: Seeded
) -> None:
    ui_login(client, VIEWER, tenant.password)
    page = client.get("/customers", params={"q": f"#{seeded.olivia}"}).text
    assert _names(page)[0] == "Olivia Smith"
    assert '<span class="chip" title="Matched by">profile id</span>' in page
    assert _names(client.get("/customers", params={"q": str(seeded.other)}).text) == []
    by_email = client.get("/customers", params={"q": "olivia.smith@example.com"}).text
    assert '<span class="chip" title="Matched by">email</span>' in by_email


def test_results_are_paginated(client: TestClient, tenant: Tenant, seeded: Seeded) -> None:
    ui_login(client, VIEWER, tenant.password)
    first = client.get("/customers", params={"q": "zed"}).text
    assert _names(first) == [f"Zed {n:02d}" for n in range(25)]
    assert 'href="/customers?q=zed&amp;page=2" rel="next"' in first
    assert "Showing 1–25" in first
    second = client.get("/customers", params={"q": "zed", "page": 2}).text
    assert _names(second) == [f"Zed {n:02d}" for n in range(25, 30)]
    assert 'rel="next"' not in second and 'rel="prev"' in second
    newest = client.get("/customers").text
    assert len(_names(newest)) == 25
    assert 'data-testid="customers-total">33 customers<' in newest
    assert client.get("/customers", params={"page": 0}).status_code == 400


def test_the_profile_page_shows_identities_traits_scores_consent_and_timeline(
    client: TestClient, tenant: Tenant, seeded: Seeded
) -> None:
    ui_login(client, VIEWER, tenant.password)
    page = client.get(f"/customers/{seeded.olivia}")
    assert page.status_code == 200
    html = page.text
    assert "<h1>Olivia Smith</h1>" in html
    assert "u-olivia" in html and "+447911123456" in html
    assert '<dt>plan</dt><dd class="break">gold</dd>' in html
    assert 'data-score="rfm_segment"' in html and 'data-score="loyalty_level"' in html
    assert '<span class="state state--subscribed">subscribed</span>' in html
    assert '<span class="state state--unsubscribed">unsubscribed</span>' in html
    assert "sms wording" in html and "withdrawn" in html
    assert html.count('data-testid="timeline-event"') == 25
    assert 'data-testid="timeline-more"' in html
    messages = html.split('data-testid="messages"', 1)[1].split("</section>", 1)[0]
    assert messages.count('<span class="state state--queued">queued</span>') == 2
    assert '<a href="/campaigns/424242">Campaign #424242</a> <span class="chip">B</span>' in messages
    assert '<span class="muted">service</span>' in messages
    # a viewer sees no export or erase controls
    assert f'action="/customers/{seeded.olivia}/export"' not in html
    assert f'href="/customers/{seeded.olivia}/erase"' not in html


def test_the_timeline_loads_more_and_filters(client: TestClient, tenant: Tenant, seeded: Seeded) -> None:
    ui_login(client, VIEWER, tenant.password)
    more = client.get(
        f"/customers/{seeded.olivia}/timeline", params={"offset": 25}, headers={"HX-Request": "true"}
    )
    assert more.status_code == 200
    assert (
        more.text.count('data-testid="timeline-event"') == 10
    )  # 33 imported events and 2 "queued" feedback events: 25 + 10
    assert "timeline-more" not in more.text and "<html" not in more.text
    filtered = client.get(f"/customers/{seeded.olivia}", params={"type": "track", "channel": "nope"}).text
    assert filtered.count('data-testid="timeline-event"') == 25
    pages = client.get(f"/customers/{seeded.anonymous}/timeline", params={"type": "page"},
                       headers={"HX-Request": "true"})  # fmt: skip
    assert pages.text.count('data-testid="timeline-event"') == 1 and "Home" in pages.text
    tracks = client.get(f"/customers/{seeded.anonymous}", params={"type": "track"}).text
    assert 'data-testid="timeline-event"' not in tracks and "No events of this kind." in tracks
    plain = client.get(f"/customers/{seeded.olivia}/timeline?offset=25", follow_redirects=False)
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/customers/{seeded.olivia}?offset=25#timeline"


def test_another_workspaces_customer_is_not_found(client: TestClient, tenant: Tenant, seeded: Seeded) -> None:
    ui_login(client, ADMIN, tenant.password)
    assert client.get(f"/customers/{seeded.other}").status_code == 404
    assert client.get(f"/customers/{seeded.other}/erase").status_code == 404
    assert client.get("/customers/99999999999999999999").status_code == 404  # past 64 bits: nobody


def _audit(runtime: Runtime, tenant: Tenant, action: str) -> list[AuditEntry]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEntry).where(
                    AuditEntry.workspace_id == tenant.workspace_id, AuditEntry.action == action
                )
            )
        )


def test_export_needs_a_csrf_token_and_a_marketer_or_admin(
    client: TestClient, runtime: Runtime, tenant: Tenant, seeded: Seeded
) -> None:
    url = f"/customers/{seeded.olivia}/export"
    csrf = ui_login(client, VIEWER, tenant.password)
    assert client.post(url, data={"csrf_token": csrf}).status_code == 403
    client.cookies.clear()
    csrf = ui_login(client, MARKETER, tenant.password)
    assert client.post(url, data={}).status_code == 403
    assert client.post(url, data={"csrf_token": "forged"}).status_code == 403
    profile_page = client.get(f"/customers/{seeded.olivia}").text
    assert f'action="{url}"' in profile_page and "/erase" not in profile_page  # marketers export only
    answer = client.post(url, data={"csrf_token": csrf_of(profile_page)})
    assert answer.status_code == 200
    assert (
        answer.headers["content-disposition"]
        == f'attachment; filename="customer-{seeded.olivia}-export.json"'
    )
    data = json.loads(answer.text)
    assert data["profile"]["email"] == "olivia.smith@example.com"
    assert len(data["events"]) == 35
    entries = _audit(runtime, tenant, "profile.exported")
    assert [e.target_id for e in entries] == [str(seeded.olivia)]


def test_erase_is_admin_only_needs_the_typed_email_and_is_audited(
    client: TestClient, runtime: Runtime, tenant: Tenant, seeded: Seeded
) -> None:
    url = f"/customers/{seeded.olivia}/erase"
    csrf = ui_login(client, MARKETER, tenant.password)
    assert client.get(url).status_code == 403
    assert (
        client.post(url, data={"csrf_token": csrf, "confirm": "olivia.smith@example.com"}).status_code == 403
    )
    client.cookies.clear()
    csrf = ui_login(client, ADMIN, tenant.password)
    form = client.get(url)
    assert form.status_code == 200 and "<code>olivia.smith@example.com</code>" in form.text
    assert client.post(url, data={"confirm": "olivia.smith@example.com"}).status_code == 403
    wrong = client.post(url, data={"csrf_token": csrf, "confirm": "oliver.jones@example.com"})
    assert wrong.status_code == 200
    assert "Nothing was erased." in wrong.text
    assert client.get(f"/customers/{seeded.olivia}").status_code == 200
    done = client.post(
        url, data={"csrf_token": csrf, "confirm": " Olivia.Smith@example.com"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/customers"
    listing = client.get("/customers")
    assert f"Customer #{seeded.olivia} is erased: 35 events" in listing.text
    assert client.get(f"/customers/{seeded.olivia}").status_code == 404
    with runtime.sessions() as db:
        assert db.get(Profile, seeded.olivia) is None
    [entry] = _audit(runtime, tenant, "profile.erased")
    assert entry.target_id == str(seeded.olivia) and entry.details["events"] == 35
    assert "olivia" not in json.dumps(entry.details)
    # the anonymous customer has no email: the id is what to type
    anon = client.get(f"/customers/{seeded.anonymous}/erase").text
    assert f"<code>{seeded.anonymous}</code>" in anon
