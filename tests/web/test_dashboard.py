"""The dashboard page and its JSON series: exact per-day counts on both databases, range checks, auth."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from rapport.models import AuditEntry
from rapport.runtime import Runtime
from rapport.web.series import MAX_RANGE_DAYS, MetricRegistry, SeriesMetric, days_in, default_metrics
from tests.support.tenants import Tenant
from tests.web.ui import ui_login


def _entry(workspace_id: int, when: datetime) -> AuditEntry:
    return AuditEntry(workspace_id=workspace_id, actor="test", action="test.seeded", created_at=when)


def _seed(runtime: Runtime, tenant: Tenant, other: Tenant) -> None:
    with runtime.sessions() as db:
        db.add_all(
            [
                _entry(
                    tenant.workspace_id, datetime(2025, 2, 28, 23, 59, 59, tzinfo=UTC)
                ),  # before the range
                _entry(tenant.workspace_id, datetime(2025, 3, 1, 0, 0, 0, tzinfo=UTC)),
                _entry(tenant.workspace_id, datetime(2025, 3, 2, 23, 59, 59, 999000, tzinfo=UTC)),
                _entry(tenant.workspace_id, datetime(2025, 3, 2, 12, 0, tzinfo=UTC)),
                _entry(tenant.workspace_id, datetime(2025, 3, 5, 23, 30, tzinfo=UTC)),
                _entry(tenant.workspace_id, datetime(2025, 3, 6, 0, 0, 0, tzinfo=UTC)),  # after the range
                _entry(other.workspace_id, datetime(2025, 3, 3, 10, 0, tzinfo=UTC)),  # another workspace
            ]
        )
        db.commit()


def test_the_series_counts_audit_entries_per_utc_day_of_this_workspace_only(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    _seed(runtime, tenant, other_tenant)
    ui_login(client, tenant.admin_email, tenant.password)
    answer = client.get(
        "/ui/api/dashboard/series",
        params={"metric": "audit_entries", "from": "2025-03-01", "to": "2025-03-05"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["metric"] == "audit_entries"
    assert body["label"] == "Audit entries per day"
    assert (body["from"], body["to"]) == ("2025-03-01", "2025-03-05")
    assert body["points"] == [
        {"date": "2025-03-01", "value": 1},
        {"date": "2025-03-02", "value": 2},
        {"date": "2025-03-03", "value": 0},
        {"date": "2025-03-04", "value": 0},
        {"date": "2025-03-05", "value": 1},
    ]
    assert body["total"] == 4


def test_the_series_defaults_to_the_last_30_days(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    ui_login(client, tenant.admin_email, tenant.password)
    body = client.get("/ui/api/dashboard/series").json()
    today = runtime.clock.now().date()
    assert body["to"] == today.isoformat()
    assert body["from"] == (today - timedelta(days=29)).isoformat()
    assert len(body["points"]) == 30
    # make_tenant and the login audit: 2 keys created and 2 roles set, today.
    assert body["points"][-1]["value"] == body["total"] >= 4


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"metric": "revenue_on_mars"}, "unknown_metric"),
        ({"from": "2025-03-05", "to": "2025-03-01"}, "validation_failed"),
        ({"from": "2020-01-01", "to": "2025-01-01"}, "validation_failed"),
        ({"from": "yesterday", "to": "2025-01-01"}, "validation_failed"),
    ],
)
def test_the_series_refuses_bad_questions_in_the_api_error_shape(
    client: TestClient, tenant: Tenant, params: dict[str, str], code: str
) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    answer = client.get("/ui/api/dashboard/series", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == code


def test_the_series_needs_a_session(client: TestClient, tenant: Tenant) -> None:
    answer = client.get("/ui/api/dashboard/series", headers=tenant.secret_headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"


def test_the_dashboard_shows_real_counts(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/")
    assert page.status_code == 200
    assert 'data-testid="members-count">2<' in page.text
    assert 'data-testid="keys-count">2<' in page.text
    assert "1 write · 1 secret" in page.text
    assert "1 admin · 0 marketers · 1 viewer" in page.text
    assert 'data-chart-src="/ui/api/dashboard/series"' in page.text
    assert '<option value="audit_entries" selected>Audit entries per day</option>' in page.text
    assert 'data-testid="customers-count">0<' in page.text
    assert 'data-testid="messages-sent">0<' in page.text
    chosen = client.get("/", params={"from": "2025-01-01", "to": "2025-01-31"}).text
    assert 'value="2025-01-01"' in chosen and 'value="2025-01-31"' in chosen


def test_the_registry_refuses_duplicates_and_lists_in_order() -> None:
    registry = default_metrics()
    extra = SeriesMetric("revenue", "Revenue per day", "GBP", lambda db, ws, a, b: {})
    registry.add(extra)
    assert [m.name for m in registry] == [
        "messages_sent",
        "messages_delivered",
        "messages_opened",
        "messages_clicked",
        "messages_converted",
        "revenue_attributed",
        "events",
        "purchases",
        "emails_opened",
        "audit_entries",
        "revenue",
    ]
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(extra)
    assert isinstance(registry, MetricRegistry)
    assert len(days_in(date(2024, 2, 28), date(2024, 3, 1))) == 3
    assert MAX_RANGE_DAYS >= 366


def test_customer_counts_and_event_series_come_from_real_data(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    from rapport.app import wire_runtime
    from rapport.collect.importer import import_event_rows, import_profile_rows

    wire_runtime(runtime)
    import_profile_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {"user_id": "a", "email": "a@example.com"},
            {"user_id": "b", "phone": "+447911000001"},
            {"user_id": "c"},
        ],
    )
    import_event_rows(
        runtime,
        workspace_id=tenant.workspace_id,
        rows=[
            {
                "type": "track",
                "event": "order_completed",
                "userId": "a",
                "messageId": f"m{i}",
                "timestamp": f"2025-03-0{n}T10:00:00Z",
                "properties": {"total": 10},
            }
            for i, n in enumerate((1, 2, 2))
        ],
    )
    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/").text
    assert 'data-testid="customers-count">3<' in page
    assert "1 with email · 1 with a phone" in page
    series = client.get(
        "/ui/api/dashboard/series", params={"metric": "purchases", "from": "2025-03-01", "to": "2025-03-03"}
    ).json()
    assert [p["value"] for p in series["points"]] == [1, 2, 0]


def test_the_dashboard_counts_customers_reach_consent_scores_and_message_series(
    client: TestClient, runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    from sqlalchemy import select

    from rapport.app import wire_runtime
    from rapport.collect.importer import import_event_rows, import_profile_rows
    from rapport.consent import service as consent_service
    from rapport.models import Identity
    from rapport.process import scores_service

    wire_runtime(runtime)
    now = runtime.clock.now()
    today = now.date()
    rows = [
        {"user_id": "a", "email": "a@example.com", "phone": "+447911000001"},
        {"user_id": "b", "email": "b@example.com"},
        {"user_id": "c", "phone": "+447911000002"},
        {"user_id": "d"},
    ]
    assert import_profile_rows(runtime, workspace_id=tenant.workspace_id, rows=rows).failed == 0
    import_profile_rows(runtime, workspace_id=other_tenant.workspace_id, rows=[{"email": "z@example.com"}])

    def event(n: int, user: str | None, name: str, day: date) -> dict[str, object]:
        who = {"userId": user} if user else {"anonymousId": "anon-1"}
        return {"type": "track", "event": name, "messageId": f"e{n}", "timestamp": f"{day}T10:00:00Z",
                "properties": {"total": 10 + n}, **who}  # fmt: skip

    events = [
        event(1, "a", "order_completed", today - timedelta(days=3)),
        event(2, "a", "order_completed", today - timedelta(days=90)),
        event(3, "b", "order_completed", today - timedelta(days=200)),
        event(4, "a", "email_delivered", today - timedelta(days=1)),
        event(5, "b", "email_delivered", today - timedelta(days=1)),
        event(6, "c", "sms_delivered", today),
        event(7, "a", "email_opened", today),
        event(8, "a", "email_clicked", today),
        event(9, None, "product_viewed", today),  # a new anonymous customer, active today
    ]
    assert import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=events).failed == 0
    with runtime.sessions() as db:
        ids = dict(
            db.execute(
                select(Identity.value, Identity.profile_id).where(
                    Identity.workspace_id == tenant.workspace_id, Identity.kind == "user_id"
                )
            ).all()
        )
        for user, channel, action in (("a", "email", "granted"), ("b", "email", "withdrawn"),
                                      ("a", "sms", "granted"), ("c", "sms", "withdrawn"), ("d", "email", "granted")):  # fmt: skip
            statement = consent_service.Statement(channel=channel, action=action, source="test", actor="test")
            consent_service.record(
                db, workspace_id=tenant.workspace_id, profile_id=ids[user], statement=statement, now=now
            )
        db.commit()
    scores_service.run_scores(runtime, tenant.workspace_id, ["rfm"], now)

    ui_login(client, tenant.viewer_email, tenant.password)
    page = client.get("/").text
    assert 'data-testid="customers-count">5<' in page
    assert 'data-testid="customers-known">4<' in page and "</span> known · 1 anonymous" in page
    # new: c (first event today), d (no event: created now) and the anonymous one; a and b bought long ago
    assert 'data-testid="customers-new">3<' in page
    assert 'data-testid="customers-active">4<' in page  # a, b (email_delivered), c, the anonymous one
    assert "2 with email · 2 with a phone" in page
    reach = page.split('data-testid="reachable"', 1)[1].split("</ul>", 1)[0]
    # email: a (b withdrew, d has no address); sms: a (c withdrew)
    assert '<li data-channel="email"><span>Email</span> <strong>1</strong></li>' in reach
    assert '<li data-channel="sms"><span>SMS</span> <strong>1</strong></li>' in reach
    rates = page.split('data-testid="consent-rates"', 1)[1].split("</table>", 1)[0]
    assert '<span class="bars__count">50.0%</span> <span class="muted">1 of 2</span>' in rates
    rfm = page.split('data-testid="rfm-bars"', 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<tr data-key="([a-z_]+)">', rfm)[-1] == "never_purchased"
    never = rfm.split('data-key="never_purchased"', 1)[1].split("</tr>", 1)[0]
    assert '<span class="bars__count">3</span>' in never  # c, d and the anonymous customer
    assert 'data-testid="churn-empty"' in page
    assert "Revenue attributed to campaigns shows here" in page
    # the chart opens on deliveries: there are no sent events, but there are delivered ones
    assert '<option value="messages_delivered" selected>' in page
    series = client.get(
        "/ui/api/dashboard/series",
        params={
            "metric": "messages_delivered",
            "from": (today - timedelta(days=1)).isoformat(),
            "to": str(today),
        },
    ).json()
    assert [p["value"] for p in series["points"]] == [2, 1]
    for metric, total in (("messages_opened", 1), ("messages_clicked", 1), ("messages_sent", 0)):
        body = client.get("/ui/api/dashboard/series", params={"metric": metric}).json()
        assert body["total"] == total, metric
