"""The new-campaign form's checks through the TestClient on both databases, with a fake clock: a send time in
the past is refused when saving and when scheduling (nothing frozen, queued or sent) and can be sent now
instead; numbers too big for the database are refused in words with their range and no 500; every problem of
a form is listed in the form's words, next to its input, with what was typed kept; and the inputs carry the
server's bounds as min/max. The number parser itself is checked without a server at the end."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.kit.clock import FakeClock
from rapport.runtime import Runtime
from rapport.web.campaigns_form import NUMBERS, NumberInput
from tests.campaigns.conftest import campaign_messages, make_segment, recipients, run_worker
from tests.messaging import conftest as messaging_fixtures
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

settings = messaging_fixtures.settings
sink = messaging_fixtures.sink
email_channel = messaging_fixtures.email_channel

# 15 January: the workspace's zone (Europe/London) is on UTC, so the form's wall-clock times are UTC too
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
PAST = "The send time 2021-01-01 09:00 (Europe/London) is in the past; choose a later time or send now"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def _template(client: TestClient, tenant: Tenant) -> int:
    answer = client.post(
        "/api/v1/templates",
        json={"name": "News", "channel": "email", "content": {"subject": "News", "html": "<p>Hi</p>"}},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _form(csrf: str, template: int, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "csrf_token": csrf,
        "name": "Spring",
        "kind": "broadcast",
        "channel": "email",
        "variant_A_template": str(template),
        "control_percent": "0",
        "goal_event": "order_completed",
        "goal_days": "7",
        "when": "now",
    }
    return {**base, **fields}


def _listed(page: str) -> list[str]:
    """The problems listed at the top of the form."""
    found = re.search(r'<ul data-testid="form-errors">(.*?)</ul>', page, re.S)
    assert found, "no list of problems on the page"
    return [
        html.unescape(re.sub(r"<[^>]+>", "", item)).strip()
        for item in re.findall(r"<li>(.*?)</li>", found[1])
    ]


def _inline(page: str, name: str) -> str:
    """The problem shown next to the input ``name``."""
    found = re.search(rf'<p [^>]*data-testid="error-{name}">([^<]*)</p>', page)
    assert found, f"no problem next to {name}"
    return html.unescape(found[1])


def _value(page: str, name: str) -> str:
    """The value the input ``name`` shows."""
    found = re.search(rf'<input [^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert found, f"no input {name}"
    return html.unescape(found[1])


def _campaigns(client: TestClient, tenant: Tenant) -> list[dict[str, object]]:
    answer = client.get("/api/v1/campaigns", headers=tenant.secret_headers)
    assert answer.status_code == 200
    return list(answer.json())


def test_a_send_time_in_the_past_is_refused_when_saving(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    make_people(runtime, tenant, 2, extra={"city": "Leeds"})
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    template = _template(client, tenant)
    csrf = ui_login(client, tenant.admin_email, tenant.password)

    refused = client.post(
        "/campaigns/new",
        data=_form(csrf, template, segment_ids=str(segment), when="at", send_at="2021-01-01T09:00"),
    )
    assert refused.status_code == 400
    assert _listed(refused.text) == [PAST]
    assert _inline(refused.text, "send_at") == PAST
    assert 'name="send_at" type="datetime-local" value="2021-01-01T09:00" aria-invalid="true"' in refused.text
    assert _campaigns(client, tenant) == []

    # a minute's grace for clocks and slow hands; older than that is refused
    late = client.post(
        "/campaigns/new",
        data=_form(
            csrf, template, name="Late", segment_ids=str(segment), when="at", send_at="2026-01-15T11:58"
        ),
    )
    assert late.status_code == 400
    assert _listed(late.text) == [
        "The send time 2026-01-15 11:58 (Europe/London) is in the past; choose a later time or send now"
    ]
    just = client.post(
        "/campaigns/new",
        data=_form(
            csrf, template, name="Just", segment_ids=str(segment), when="at", send_at="2026-01-15T11:59"
        ),
        follow_redirects=False,
    )
    assert just.status_code == 303, just.text
    # sending when launched stays the way to send now
    now = client.post(
        "/campaigns/new",
        data=_form(csrf, template, name="Now", segment_ids=str(segment)),
        follow_redirects=False,
    )
    assert now.status_code == 303, now.text
    assert sorted(str(c["name"]) for c in _campaigns(client, tenant)) == ["Just", "Now"]


def test_schedule_refuses_a_send_time_that_passed_after_saving_and_send_now_still_sends(
    client: TestClient,
    app: FastAPI,
    runtime: Runtime,
    tenant: Tenant,
    clock: FakeClock,
    sink: SmtpSink,
    email_channel: object,
) -> None:
    make_people(runtime, tenant, 3, extra={"city": "Leeds"})
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    template = _template(client, tenant)
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    saved = client.post(
        "/campaigns/new",
        data=_form(csrf, template, segment_ids=str(segment), when="at", send_at="2026-01-15T13:00"),
        follow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    path = saved.headers["location"]
    cid = int(path.rsplit("/", 1)[1])
    review = client.get(path)
    assert ">Schedule<" in review.text and "Send now instead" not in review.text

    clock.advance(timedelta(hours=3))  # saved "for in an hour"; somebody presses Schedule three hours later
    review = client.get(path)
    assert 'data-testid="send-at-passed"' in review.text and "Send now instead" in review.text
    refused = client.post(f"{path}/action", data={"csrf_token": csrf, "action": "launch"})
    assert refused.status_code == 200 and refused.url.path == path
    assert (
        "The send time 2026-01-15 13:00 (Europe/London) is in the past; choose a later time or send now"
        in html.unescape(refused.text)
    )
    run_worker(app)
    [campaign] = _campaigns(client, tenant)
    assert (campaign["status"], campaign["started_at"], campaign["audience_size"]) == ("draft", None, None)
    assert recipients(runtime, cid) == {} and campaign_messages(runtime, cid) == []
    assert sink.messages == []

    sent = client.post(f"{path}/action", data={"csrf_token": csrf, "action": "send_now"})
    assert sent.status_code == 200 and "Launched: Spring is sending." in sent.text
    run_worker(app)
    assert len(sink.wait_for(3)) == 3
    [campaign] = _campaigns(client, tenant)
    assert campaign["status"] == "sent" and campaign["send_at"] is not None
    assert datetime.fromisoformat(str(campaign["send_at"])) == NOW + timedelta(hours=3)


# (kind, input, typed, the message) — the review's cases, each refused in words with its range
HUGE = [
    (
        "broadcast",
        "throttle_per_hour",
        "100000000000000000000",
        "Throttle must be at most 10,000,000 messages per hour",
    ),
    ("broadcast", "goal_days", "1e400", "Conversion window must be at most 365 days (a year)"),
    ("broadcast", "cost_per_message", "inf", "Cost per message must be at most 1,000,000"),
    ("broadcast", "control_percent", "nan", "Control group must be a number from 0 to 90 %"),
    ("broadcast", "variant_A_weight", "-1e400", "Weight of variant A must be at least 0"),
    ("triggered", "delay_minutes", "600000", "Delay must be at most 525,600 minutes (a year)"),
    ("triggered", "reentry_days", "2.5", "Days between entries must be a whole number from 1 to 3,650 days"),
    (
        "date_relative",
        "date_offset_days",
        "99999999999999999999999",
        "Days from the date must be at most 3,650 days (ten years)",
    ),
]


@pytest.mark.parametrize(("kind", "name", "typed", "message"), HUGE, ids=[case[1] for case in HUGE])
def test_a_number_out_of_range_is_refused_in_words_with_the_input_kept(
    client: TestClient, runtime: Runtime, tenant: Tenant, kind: str, name: str, typed: str, message: str
) -> None:
    segment = make_segment(client, tenant, "Leeds", 'city = "Leeds"') if kind == "broadcast" else None
    template = _template(client, tenant)
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    extra = {
        "broadcast": {"segment_ids": str(segment)},
        "triggered": {
            "trigger_type": "event",
            "trigger_event": "signed_up",
            "reentry": "every",
            "reentry_days": "7",
        },
        "date_relative": {"date_trait": "birthday", "date_at": "09:00"},
    }[kind]
    refused = client.post("/campaigns/new", data=_form(csrf, template, kind=kind, **{**extra, name: typed}))
    assert refused.status_code == 400, refused.text
    assert _listed(refused.text) == [message]
    assert _inline(refused.text, name) == message
    assert _value(refused.text, name) == typed
    assert _campaigns(client, tenant) == []


def test_every_problem_is_listed_in_the_forms_words_next_to_its_input(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    template = _template(client, tenant)
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    typed = {
        "name": "   ",
        "kind": "triggered",
        "trigger_type": "event",
        "trigger_event": "order_completed",
        "trigger_max_age_hours": "0",
        "delay_minutes": "600000",
        "reentry": "every",
        "reentry_days": "99999",
        "variant_A_weight": "5000",
        "control_percent": "95",
        "test_percent": "150",
        "goal_days": "1e400",
        "cost_per_message": "-1",
    }
    refused = client.post("/campaigns/new", data=_form(csrf, template, **typed))
    assert refused.status_code == 400
    expected = {  # in the form's order
        "name": "Name is required",
        "trigger_max_age_hours": "Ignore events older than must be at least 0.1 hours",
        "delay_minutes": "Delay must be at most 525,600 minutes (a year)",
        "reentry_days": "Days between entries must be at most 3,650 days (ten years)",
        "variant_A_weight": "Weight of variant A must be at most 1,000",
        "control_percent": "Control group must be at most 90 %",
        "test_percent": "Test share must be at most 100 %",
        "goal_days": "Conversion window must be at most 365 days (a year)",
        "cost_per_message": "Cost per message must be at least 0",
    }
    assert _listed(refused.text) == list(expected.values())
    assert "The draft was not saved: 9 problems." in refused.text
    for name, message in expected.items():
        assert _inline(refused.text, name) == message
        assert re.search(rf'name="{name}"[^>]*aria-invalid="true"', refused.text)
        assert f'href="#err-{name}"' in refused.text
    for internal in ("delay_seconds", "reentry_days", "variants.", "trigger.", "Input should"):
        assert internal not in " ".join(_listed(refused.text))
    for name, value in typed.items():  # what was typed stays
        if name not in {"kind", "trigger_type", "reentry"}:
            assert _value(refused.text, name) == value
    assert _campaigns(client, tenant) == []


def test_every_numeric_input_carries_the_servers_bounds(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.admin_email, tenant.password)
    page = client.get("/campaigns/new").text
    inputs = re.findall(r'<input [^>]*type="number"[^>]*>', page)
    bounds = {}
    for tag in inputs:
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', tag))
        bounds[attrs["name"]] = (attrs.get("min"), attrs.get("max"))
    assert bounds == {name: (n.min_attr, n.max_attr) for name, n in NUMBERS.items()}
    assert bounds["delay_minutes"] == ("0", "525600") and bounds["throttle_per_hour"] == ("1", "10000000")


@pytest.mark.parametrize(
    ("typed", "value", "problem"),
    [
        ("", None, None),
        (" 12 ", 12.0, None),
        ("1e3", 1000.0, None),
        ("-5", -5.0, None),
        ("12.5", None, "Delay must be a whole number from -10 to 1,000 minutes"),
        ("twelve", None, "Delay must be a whole number from -10 to 1,000 minutes"),
        ("nan", None, "Delay must be a whole number from -10 to 1,000 minutes"),
        ("inf", None, "Delay must be at most 1,000 minutes (a while)"),
        ("1e400", None, "Delay must be at most 1,000 minutes (a while)"),
        ("1001", None, "Delay must be at most 1,000 minutes (a while)"),
        ("-1e400", None, "Delay must be at least -10 minutes"),
    ],
)
def test_the_number_parser_says_what_is_wrong(typed: str, value: float | None, problem: str | None) -> None:
    delay = NumberInput("Delay", -10, 1000, "minutes", meaning="a while")
    assert delay.parse(typed) == (value, problem)


def test_amounts_read_as_words() -> None:
    assert NumberInput("Days", 1, 3650, "days").parse("0") == (None, "Days must be at least 1 day")
    throttle = NumberInput("Throttle", 1, 10, "messages per hour")
    assert throttle.amount(1) == "1 message per hour" and throttle.amount(10) == "10 messages per hour"
    assert NumberInput("Share", 0, 90, "%", whole=False).parse("90.5") == (None, "Share must be at most 90 %")
    assert NumberInput("Age", 0.1, 8784, "hours", whole=False).parse("0.05") == (
        None,
        "Age must be at least 0.1 hours",
    )
