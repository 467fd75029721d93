"""Consent through the API and the customer pages, on SQLite and PostgreSQL (R11, R12, R15, R16, R26)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from rapport.accounts import service as accounts_service
from rapport.consent import links, service, tokens
from rapport.consent.tokens import LinkTarget
from rapport.kit.clock import FakeClock
from rapport.models import AuditEntry, Job
from rapport.runtime import Runtime
from tests.consent.conftest import make_profile
from tests.support.tenants import Tenant


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _consent(client: TestClient, tenant: Tenant, profile_id: int) -> dict:  # type: ignore[type-arg]
    answer = client.get(f"/api/v1/profiles/{profile_id}/consent", headers=tenant.secret_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _state(client: TestClient, tenant: Tenant, profile_id: int, channel: str, topic: str = "") -> str | None:
    for sub in _consent(client, tenant, profile_id)["subscriptions"]:
        if sub["channel"] == channel and sub["topic"] == topic:
            return str(sub["state"])
    return None


def _grant_email(client: TestClient, tenant: Tenant, profile_id: int) -> None:
    answer = client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers=tenant.secret_headers,
        json={
            "channel": "email",
            "action": "granted",
            "source": "checkout",
            "wording": "Send me offers",
            "wording_version": "v3",
            "ip": "203.0.113.9",
        },
    )
    assert answer.status_code == 200, answer.text


def test_grant_and_withdraw_are_logged_with_proof(
    client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    _grant_email(client, tenant, profile_id)
    client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers=tenant.secret_headers,
        json={"channel": "email", "action": "withdrawn", "source": "call_centre"},
    )
    body = _consent(client, tenant, profile_id)
    assert [s["state"] for s in body["subscriptions"]] == ["unsubscribed"]
    newest, oldest = body["log"]
    assert (oldest["action"], oldest["state_before"], oldest["state_after"]) == (
        "granted",
        None,
        "subscribed",
    )
    assert (oldest["wording"], oldest["wording_version"], oldest["ip"]) == (
        "Send me offers",
        "v3",
        "203.0.113.9",
    )
    assert oldest["actor"].startswith("key:")
    assert (newest["action"], newest["state_before"], newest["state_after"]) == (
        "withdrawn",
        "subscribed",
        "unsubscribed",
    )
    audit = client.get("/api/v1/audit?action=consent.withdrawn", headers=tenant.secret_headers).json()
    assert len(audit) == 1 and audit[0]["target_id"] == str(profile_id)


def test_the_consent_log_is_append_only(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    _grant_email(client, tenant, profile_id)
    with runtime.sessions() as db:
        with pytest.raises(Exception, match="append-only"):
            db.execute(text("UPDATE consent_log SET action = 'withdrawn'"))
            db.flush()
        db.rollback()


def test_granting_needs_the_consent_scope(client: TestClient, tenant: Tenant, profile_id: int) -> None:
    reader = client.post(
        "/api/v1/keys", headers=tenant.secret_headers, json={"kind": "secret", "scopes": ["profiles:read"]}
    ).json()["key"]
    answer = client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers={"Authorization": f"Bearer {reader}"},
        json={"channel": "email", "action": "granted"},
    )
    assert answer.status_code == 403
    assert _state(client, tenant, profile_id, "email") is None


def test_unknown_profile_topic_or_channel(client: TestClient, tenant: Tenant, profile_id: int) -> None:
    assert client.get("/api/v1/profiles/999999/consent", headers=tenant.secret_headers).status_code == 404
    bad_topic = client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers=tenant.secret_headers,
        json={"channel": "email", "action": "granted", "topic": "nope"},
    )
    assert bad_topic.status_code == 400 and "unknown topic" in bad_topic.json()["error"]["message"]
    bad_channel = client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers=tenant.secret_headers,
        json={"channel": "fax", "action": "granted"},
    )
    assert bad_channel.status_code == 400


def test_other_workspace_cannot_read_or_change_consent(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, profile_id: int
) -> None:
    assert (
        client.get(f"/api/v1/profiles/{profile_id}/consent", headers=other_tenant.secret_headers).status_code
        == 404
    )
    answer = client.post(
        f"/api/v1/profiles/{profile_id}/consent",
        headers=other_tenant.secret_headers,
        json={"channel": "email", "action": "withdrawn"},
    )
    assert answer.status_code == 404


def test_one_click_unsubscribe_rfc8058(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    """R11: POST without login or cookie → 200, no redirect, committed; GET changes nothing."""
    _grant_email(client, tenant, profile_id)
    url = links.unsubscribe_url(
        runtime, LinkTarget(tenant.workspace_id, profile_id, "email", message_id="m-1")
    )
    path = url.removeprefix(runtime.settings.base_url)
    page = client.get(path)
    assert page.status_code == 200 and "Unsubscribe from" in page.text
    assert (
        _state(client, tenant, profile_id, "email") == "subscribed"
    )  # a GET (a link scanner) changes nothing
    client.cookies.clear()
    answer = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        follow_redirects=False,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200
    assert _state(client, tenant, profile_id, "email") == "unsubscribed"
    log = _consent(client, tenant, profile_id)["log"][0]
    assert (log["source"], log["details"]) == ("one_click", {"message_id": "m-1"})
    again = client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 200


def test_unsubscribe_links_keep_working_and_cannot_be_forged(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int, clock: FakeClock
) -> None:
    """R12: a link from months ago still works; a tampered one is refused."""
    _grant_email(client, tenant, profile_id)
    token = tokens.unsubscribe_token(runtime.secret_key, LinkTarget(tenant.workspace_id, profile_id, "email"))
    clock.advance(timedelta(days=400))
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.post(f"/u/{forged}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    other = tokens.unsubscribe_token("another-secret", LinkTarget(tenant.workspace_id, profile_id, "email"))
    assert client.post(f"/u/{other}", data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert _state(client, tenant, profile_id, "email") == "subscribed"
    assert client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert _state(client, tenant, profile_id, "email") == "unsubscribed"


def test_preference_centre_topics_and_pause(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    for key, opt_in in (("offers", True), ("news", False)):
        made = client.post(
            "/api/v1/topics",
            headers=tenant.secret_headers,
            json={"key": key, "name": key.title(), "opt_in": opt_in},
        )
        assert made.status_code == 201
    _grant_email(client, tenant, profile_id)
    token = tokens.unsubscribe_token(runtime.secret_key, LinkTarget(tenant.workspace_id, profile_id, "email"))
    page = client.get(f"/u/{token}")
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert form_token
    # Keep email, opt in to offers, drop news, pause four weeks.
    saved = client.post(
        f"/u/{token}/preferences",
        data={
            "form_token": form_token.group(1),
            "topic": ["offers"],
            "channel": ["email"],
            "pause_weeks": "4",
        },
    )
    assert saved.status_code == 200 and "Your choices are saved" in saved.text
    assert _state(client, tenant, profile_id, "", "offers") == "subscribed"
    assert _state(client, tenant, profile_id, "", "news") == "unsubscribed"
    subs = {(s["channel"], s["topic"]): s for s in _consent(client, tenant, profile_id)["subscriptions"]}
    assert subs[("email", "")]["paused_until"] is not None
    with runtime.read_sessions() as db:
        workspace = accounts_service.get_workspace(db, tenant.workspace_id)
        decision = service.can_send(
            db,
            workspace=workspace,
            profile_id=profile_id,
            channel="email",
            topic="offers",
            now=runtime.clock.now(),
        )
    assert not decision.allowed and "paused" in decision.reason
    forged = client.post(f"/u/{token}/preferences", data={"form_token": "x", "topic": ["news"]})
    assert forged.status_code == 403
    assert _state(client, tenant, profile_id, "", "news") == "unsubscribed"


def test_double_opt_in_sends_only_the_confirmation_until_confirmed(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    """R15 (state side): pending until the person confirms by POST; a GET never confirms."""
    started = client.post(
        f"/api/v1/profiles/{profile_id}/consent/double-opt-in",
        headers=tenant.secret_headers,
        json={"wording": "Join our newsletter", "ip": "198.51.100.4"},
    )
    assert started.status_code == 202, started.text
    assert started.json()["state"] == "pending"
    with runtime.read_sessions() as db:
        workspace = accounts_service.get_workspace(db, tenant.workspace_id)
        job = db.scalar(select(Job).where(Job.kind == "consent.send_confirmation"))
        assert job is not None and job.payload["profile_id"] == profile_id
        assert not service.can_send(
            db, workspace=workspace, profile_id=profile_id, channel="email", now=runtime.clock.now()
        ).allowed
        assert service.can_send(
            db,
            workspace=workspace,
            profile_id=profile_id,
            channel="email",
            now=runtime.clock.now(),
            is_confirmation=True,
        ).allowed
    path = started.json()["confirm_url"].removeprefix(runtime.settings.base_url)
    page = client.get(path)
    assert page.status_code == 200 and "Confirm your subscription" in page.text
    assert _state(client, tenant, profile_id, "email") == "pending"
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert form_token
    done = client.post(path, data={"form_token": form_token.group(1)})
    assert done.status_code == 200 and "you're subscribed" in done.text
    assert _state(client, tenant, profile_id, "email") == "subscribed"
    actions = [r["action"] for r in _consent(client, tenant, profile_id)["log"]]
    assert actions == ["confirmed", "requested"]


def test_merge_folds_subscriptions_newest_wins(
    runtime: Runtime, client: TestClient, tenant: Tenant, clock: FakeClock
) -> None:
    first = make_profile(runtime, tenant, "u-1", "one@example.com")
    second = make_profile(runtime, tenant, "u-2", "two@example.com")
    _grant_email(client, tenant, first)
    clock.advance(timedelta(minutes=5))
    client.post(
        f"/api/v1/profiles/{second}/consent",
        headers=tenant.secret_headers,
        json={"channel": "email", "action": "withdrawn"},
    )
    client.post(
        f"/api/v1/profiles/{second}/consent",
        headers=tenant.secret_headers,
        json={"channel": "sms", "action": "granted"},
    )
    with runtime.sessions() as db:
        service.fold_merge(
            db, workspace_id=tenant.workspace_id, survivor_id=first, merged_id=second, now=clock.now()
        )
        db.execute(text("UPDATE profiles SET merged_into_id = :s WHERE id = :m"), {"s": first, "m": second})
        db.commit()
    assert _state(client, tenant, first, "email") == "unsubscribed"
    assert _state(client, tenant, first, "sms") == "subscribed"
    log = _consent(client, tenant, first)["log"]
    assert {r["profile_id"] for r in log} == {first, second}
    assert any(r["source"] == "merge" for r in log)


def test_audit_never_holds_the_email(
    runtime: Runtime, client: TestClient, tenant: Tenant, profile_id: int
) -> None:
    _grant_email(client, tenant, profile_id)
    with runtime.read_sessions() as db:
        details = [str(e.details) for e in db.scalars(select(AuditEntry)).all()]
    assert not any("ann@example.com" in d for d in details)
