"""Settings pages: keys and members change only through admins, every UI form checks its CSRF token."""

from __future__ import annotations

import re
from datetime import time

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.app import create_app
from rapport.config import Settings as AppSettings
from rapport.consent import service as consent_service
from rapport.messaging.caps import Cap, caps_from_settings
from rapport.messaging.quiet_hours import Window, window_for
from rapport.models import AuditEntry
from rapport.runtime import Runtime, build_runtime
from rapport.web.session import UiRoute
from tests.support.routes import fill_path
from tests.support.tenants import Tenant
from tests.web.ui import csrf_of, ui_login


def _ui_routes(app: object, method: str) -> list[str]:
    """Every UI route (those mount() registered as UI routers) answering ``method``."""
    assert isinstance(app, FastAPI)
    paths = []
    for router in app.state.ui_routers:
        for route in router.routes:
            assert isinstance(route, APIRoute) and isinstance(route, UiRoute), route
            if method in (route.methods or set()):
                paths.append(route.path)
    return sorted(paths)


def _key_names(runtime: Runtime, tenant: Tenant, *, include_revoked: bool = False) -> set[str]:
    with runtime.sessions() as db:
        keys = accounts_service.list_keys(
            db, workspace_id=tenant.workspace_id, include_revoked=include_revoked
        )
        return {key.name for key in keys}


def _roles(runtime: Runtime, tenant: Tenant) -> dict[str, str]:
    with runtime.sessions() as db:
        return {user.email: m.role for m, user in accounts_service.list_members(db, tenant.workspace_id)}


def _add_member(runtime: Runtime, tenant: Tenant, email: str, role: Role) -> int:
    with runtime.sessions() as db:
        user = accounts_service.create_user(db, email=email, password=tenant.password)
        accounts_service.set_role(
            db, workspace_id=tenant.workspace_id, user_id=user.id, role=role, actor="test"
        )
        db.commit()
        return user.id


def test_every_ui_post_refuses_a_missing_or_wrong_csrf_token(client: TestClient, tenant: Tenant) -> None:
    posts = [path for path in _ui_routes(client.app, "POST") if path != "/login"]
    assert {"/logout", "/settings/keys", "/settings/keys/{key_id}/revoke", "/settings/users"} <= set(posts)
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    for path in posts:
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": csrf[:-1]}):
            answer = client.post(fill_path(path), data=data, follow_redirects=False)
            assert answer.status_code == 403, (path, data, answer.status_code)
            assert "text/html" in answer.headers["content-type"]
            assert "Not allowed" in answer.text
        wrong_header = client.post(
            fill_path(path), headers={"X-CSRF-Token": "forged"}, follow_redirects=False
        )
        assert wrong_header.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 200  # still logged in


def test_every_ui_page_renders_for_a_viewer_with_a_strict_csp(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.viewer_email, tenant.password)
    pages = [path for path in _ui_routes(client.app, "GET") if "{" not in path and path != "/login"]
    assert len(pages) >= 10
    for path in pages:
        answer = client.get(path)
        assert answer.status_code == 200, path
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'self'" in csp
        assert answer.headers["cache-control"] == "no-store"
        assert (
            "<script>" not in answer.text
            and " style=" not in answer.text
            and " on" not in re.sub(r"\s(on\w+)=", " on", "")
        )
        assert not re.search(r"\son[a-z]+=", answer.text), f"inline handler on {path}"
        assert "https://" not in answer.text, f"external reference on {path}"


def test_an_admin_creates_a_secret_key_shown_once_and_revokes_it(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    answer = client.post(
        "/settings/keys",
        data={
            "csrf_token": csrf,
            "kind": "secret",
            "name": "reporting",
            "scopes": ["profiles:read", "events:read"],
        },
    )
    assert answer.status_code == 201
    plain = re.search(r'data-testid="new-key">(sk_[^<]+)<', answer.text)
    assert plain, answer.text
    key = plain.group(1)
    assert client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert key not in client.get("/settings/keys").text
    with runtime.sessions() as db:
        issued = next(
            k
            for k in accounts_service.list_keys(db, workspace_id=tenant.workspace_id)
            if k.name == "reporting"
        )
        assert issued.scopes == ["events:read", "profiles:read"]
        assert issued.created_by.startswith("user:")
        key_id = issued.id
    revoked = client.post(
        f"/settings/keys/{key_id}/revoke", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert "Key reporting" in client.get("/settings/keys").text
    assert client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert "reporting" not in _key_names(runtime, tenant)
    with runtime.sessions() as db:
        actions = db.scalars(
            select(AuditEntry.action).where(
                AuditEntry.workspace_id == tenant.workspace_id, AuditEntry.target_id == str(key_id)
            )
        ).all()
    assert sorted(actions) == ["key.created", "key.revoked"]


def test_a_write_key_and_the_form_errors(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    write = client.post("/settings/keys", data={"csrf_token": csrf, "kind": "write", "name": "shop"})
    assert write.status_code == 201
    assert re.search(r'data-testid="new-key">wk_', write.text)
    no_scope = client.post("/settings/keys", data={"csrf_token": csrf, "kind": "secret", "name": "bare"})
    assert no_scope.status_code == 400
    assert "a secret key needs at least one scope" in no_scope.text
    bad_kind = client.post("/settings/keys", data={"csrf_token": csrf, "kind": "root", "name": "odd"})
    assert bad_kind.status_code == 400 and "Kind: choose a write key" in bad_kind.text
    unknown = client.post(
        "/settings/keys", data={"csrf_token": csrf, "kind": "secret", "name": "odd", "scopes": ["god:mode"]}
    )
    assert unknown.status_code == 400 and "unknown scopes: god:mode" in unknown.text
    assert _key_names(runtime, tenant) == {"web", "server", "shop"}


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MARKETER])
def test_non_admins_see_no_change_buttons_and_their_posts_are_refused(
    client: TestClient, tenant: Tenant, runtime: Runtime, role: Role
) -> None:
    email = f"{role.value}2@acme.test"
    _add_member(runtime, tenant, email, role)
    csrf = ui_login(client, email, tenant.password)
    keys_page = client.get("/settings/keys").text
    assert "Create key" not in keys_page and "Revoke…" not in keys_page
    assert "Only admins can create or revoke keys." in keys_page
    users_page = client.get("/settings/users").text
    assert "Add user" not in users_page and "<select" not in users_page
    assert "Only admins can read the audit log." in client.get("/settings/audit").text
    with runtime.sessions() as db:
        key_id = accounts_service.list_keys(db, workspace_id=tenant.workspace_id)[0].id
        admin_id = next(
            u.id
            for _m, u in accounts_service.list_members(db, tenant.workspace_id)
            if u.email == tenant.admin_email
        )
    attempts: list[tuple[str, dict[str, object]]] = [
        ("/settings/keys", {"kind": "secret", "name": "sneaky", "scopes": ["admin"]}),
        (f"/settings/keys/{key_id}/revoke", {}),
        ("/settings/users", {"email": "mallory@acme.test", "password": "x" * 12, "role": "admin"}),
        (f"/settings/users/{admin_id}/role", {"role": "viewer"}),
    ]
    for path, data in attempts:
        answer = client.post(path, data={"csrf_token": csrf, **data}, follow_redirects=False)
        assert answer.status_code == 403, path
        assert f"Your role ({role.value}) cannot" in answer.text
    assert _key_names(runtime, tenant) == {"web", "server"}
    assert _roles(runtime, tenant)[tenant.admin_email] == "admin"
    assert "mallory@acme.test" not in _roles(runtime, tenant)


def test_an_admin_adds_users_and_changes_roles(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    added = client.post(
        "/settings/users",
        data={
            "csrf_token": csrf,
            "email": "Mia@Acme.test",
            "name": "Mia",
            "password": "mia-password-1",
            "role": "marketer",
        },
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert "mia@acme.test now has the marketer role." in client.get("/settings/users").text
    # Someone with an account elsewhere joins with their own password unchanged.
    joined = client.post(
        "/settings/users",
        data={
            "csrf_token": csrf,
            "email": other_tenant.admin_email,
            "password": "ignored-password",
            "role": "viewer",
        },
    )
    assert "keep their existing password" in joined.text
    again = client.post(
        "/settings/users",
        data={"csrf_token": csrf, "email": "mia@acme.test", "password": "mia-password-1", "role": "viewer"},
    )
    assert again.status_code == 400 and "already a member" in again.text
    short = client.post(
        "/settings/users",
        data={"csrf_token": csrf, "email": "li@acme.test", "password": "short", "role": "viewer"},
    )
    assert short.status_code == 400 and "at least 10 characters" in short.text
    assert _roles(runtime, tenant) == {
        tenant.admin_email: "admin",
        tenant.viewer_email: "viewer",
        "mia@acme.test": "marketer",
        other_tenant.admin_email: "viewer",
    }
    with TestClient(client.app) as mia:
        mia_csrf = ui_login(mia, "mia@acme.test", "mia-password-1")
        assert 'badge--marketer">marketer' in mia.get("/").text
    with TestClient(client.app) as joiner:
        ui_login(joiner, other_tenant.admin_email, other_tenant.password)
    with runtime.sessions() as db:
        mia_id = next(
            u.id
            for _m, u in accounts_service.list_members(db, tenant.workspace_id)
            if u.email == "mia@acme.test"
        )
    changed = client.post(f"/settings/users/{mia_id}/role", data={"csrf_token": csrf, "role": "admin"})
    assert "mia@acme.test now has the admin role." in changed.text
    assert _roles(runtime, tenant)["mia@acme.test"] == "admin"
    assert mia_csrf


def test_the_last_admin_cannot_be_demoted(client: TestClient, tenant: Tenant, runtime: Runtime) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    with runtime.sessions() as db:
        admin_id = next(
            u.id
            for _m, u in accounts_service.list_members(db, tenant.workspace_id)
            if u.email == tenant.admin_email
        )
    answer = client.post(f"/settings/users/{admin_id}/role", data={"csrf_token": csrf, "role": "viewer"})
    assert "needs at least one admin" in answer.text
    assert _roles(runtime, tenant)[tenant.admin_email] == "admin"
    bad = client.post(f"/settings/users/{admin_id}/role", data={"csrf_token": csrf, "role": "owner"})
    assert bad.status_code == 400


def test_an_admin_cannot_reach_another_workspaces_keys(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, runtime: Runtime
) -> None:
    with runtime.sessions() as db:
        foreign = accounts_service.list_keys(db, workspace_id=other_tenant.workspace_id)[0].id
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    answer = client.post(f"/settings/keys/{foreign}/revoke", data={"csrf_token": csrf})
    assert answer.status_code == 404
    assert _key_names(runtime, other_tenant) == {"web", "server"}
    assert "server" in client.get("/settings/keys").text
    assert str(other_tenant.write_key[:10]) not in client.get("/settings/keys").text
    assert other_tenant.admin_email not in client.get("/settings/users").text


def test_the_audit_log_page_lists_this_workspace_only(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    client.post("/settings/keys", data={"csrf_token": csrf, "kind": "write", "name": "audited"})
    page = client.get("/settings/audit").text
    assert "key.created" in page and "audited" in page and "user.role_set" in page
    assert csrf_of(page) == csrf
    assert f"admin@{other_tenant.slug}" not in page


def _workspace_settings(runtime: Runtime, tenant: Tenant) -> dict[str, object]:
    with runtime.sessions() as db:
        return dict(accounts_service.get_workspace(db, tenant.workspace_id).settings or {})


def _caps_form(csrf: str, **values: str) -> dict[str, str]:
    form = {"csrf_token": csrf}
    for channel in ("all", "email", "sms", "push", "inapp", "webhook"):
        for per in ("day", "week"):
            form[f"cap_{channel}_{per}"] = ""
    form.update(values)
    return form


def test_caps_set_in_the_ui_are_what_the_deliverer_reads(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    assert caps_from_settings(_workspace_settings(runtime, tenant)) == []
    saved = client.post(
        "/settings/limits/caps",
        data=_caps_form(csrf, cap_email_day="1", cap_email_week="3", cap_all_day="2"),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert sorted(caps_from_settings(_workspace_settings(runtime, tenant)), key=repr) == sorted(
        [Cap("email", "day", 1), Cap("email", "week", 3), Cap("*", "day", 2)], key=repr
    )
    page = client.get("/settings/limits").text
    assert "Frequency caps are saved." in page
    assert (
        'id="cap_email_week" name="cap_email_week" type="number" min="0" max="10000" inputmode="numeric" value="3"'
        in page
    )
    refused = client.post(
        "/settings/limits/caps", data=_caps_form(csrf, cap_sms_week="-4", cap_email_day="5")
    )
    assert refused.status_code == 400
    assert "SMS per week: a whole number from 0 to 10,000" in refused.text
    assert (
        'name="cap_sms_week" type="number" min="0" max="10000" inputmode="numeric" value="-4" aria-invalid="true"'
        in refused.text
    )
    assert _workspace_settings(runtime, tenant)["caps"] == {"email": {"day": 1, "week": 3}, "*": {"day": 2}}
    backwards = client.post(
        "/settings/limits/caps", data=_caps_form(csrf, cap_email_day="5", cap_email_week="3")
    )
    assert backwards.status_code == 400
    assert "5 per day is more than the 3 per week, so the daily cap would never be reached" in backwards.text
    assert _workspace_settings(runtime, tenant)["caps"] == {"email": {"day": 1, "week": 3}, "*": {"day": 2}}
    cleared = client.post("/settings/limits/caps", data=_caps_form(csrf), follow_redirects=False)
    assert cleared.status_code == 303 and "caps" not in _workspace_settings(runtime, tenant)
    with runtime.sessions() as db:
        entries = db.scalars(
            select(AuditEntry).where(
                AuditEntry.workspace_id == tenant.workspace_id, AuditEntry.action == "settings.caps_changed"
            )
        ).all()
    assert [e.details["after"] for e in entries] == [{"email": {"day": 1, "week": 3}, "*": {"day": 2}}, None]


def test_quiet_hours_default_to_sms_8_to_21_and_change_what_the_deliverer_reads(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    page = client.get("/settings/limits").text
    assert 'id="quiet_sms_start" name="quiet_sms_start" type="time" value="08:00"' in page
    assert 'id="quiet_sms_end" name="quiet_sms_end" type="time" value="21:00"' in page
    form = {"csrf_token": csrf, "quiet_sms_start": "09:30", "quiet_sms_end": "20:00"}
    form |= {"quiet_email_start": "22:00", "quiet_email_end": "06:00"}
    assert client.post("/settings/limits/quiet-hours", data=form, follow_redirects=False).status_code == 303
    settings = _workspace_settings(runtime, tenant)
    assert window_for("sms", settings) == Window(time(9, 30), time(20, 0))
    assert window_for("email", settings) == Window(time(22, 0), time(6, 0))
    assert window_for("push", settings) is None
    bad = client.post("/settings/limits/quiet-hours", data={**form, "quiet_push_start": "25:00"})
    assert bad.status_code == 400 and "Web push: give both times as HH:MM" in bad.text
    assert 'value="25:00" aria-invalid="true"' in bad.text
    same = client.post("/settings/limits/quiet-hours", data={**form, "quiet_sms_end": "09:30"})
    assert same.status_code == 400 and "leave both empty for any time" in same.text
    anytime = {"csrf_token": csrf, "quiet_sms_start": "", "quiet_sms_end": ""}
    assert (
        client.post("/settings/limits/quiet-hours", data=anytime, follow_redirects=False).status_code == 303
    )
    settings = _workspace_settings(runtime, tenant)
    assert window_for("sms", settings) is None and window_for("email", settings) is None


def test_channels_show_configuration_without_secrets_and_the_sender_is_editable(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    secret_settings = AppSettings(
        database_url=runtime.settings.database_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        smtp_host="smtp.example.test",
        smtp_port=587,
        smtp_security="starttls",
        smtp_username="mailer",
        smtp_password="smtp-pass-SECRET",
        twilio_account_sid="AC123",
        twilio_auth_token="twilio-token-SECRET",
        sms_from="+447911000000",
        webhook_secret="webhook-SECRET",
    )
    configured = build_runtime(secret_settings)
    try:
        with TestClient(create_app(secret_settings, runtime=configured, start_worker=False)) as other:
            ui_login(other, tenant.viewer_email, tenant.password)
            page = other.get("/settings/channels").text
    finally:
        configured.close()
    assert "smtp.example.test:587" in page and "starttls" in page and "+447911000000" in page
    assert "api.twilio.com" in page and page.count("not configured") == 1  # push only
    assert "SECRET" not in page and "mailer" not in page
    assert "Save sender" not in page and "Only admins can change settings." in page

    csrf = ui_login(client, tenant.admin_email, tenant.password)
    assert "not configured" in client.get("/settings/channels").text
    bad = client.post(
        "/settings/channels/email", data={"csrf_token": csrf, "from_name": "Acme", "from_address": "nope"}
    )
    assert bad.status_code == 400 and "not an email address" in bad.text and 'value="nope"' in bad.text
    saved = client.post(
        "/settings/channels/email",
        data={"csrf_token": csrf, "from_name": "Acme Shop", "from_address": "news@acme.test"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert _workspace_settings(runtime, tenant)["email"] == {
        "from_name": "Acme Shop",
        "from_address": "news@acme.test",
    }


def test_topics_are_listed_and_created_by_admins_only(
    client: TestClient, tenant: Tenant, runtime: Runtime
) -> None:
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    created = client.post(
        "/settings/topics",
        data={"csrf_token": csrf, "key": "Offers", "name": "Offers and sales", "consent": "opt_out"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    page = client.get("/settings/topics").text
    assert "Topic offers is created." in page and "opt-out (until a no)" in page
    again = client.post("/settings/topics", data={"csrf_token": csrf, "key": "offers", "name": "x"})
    assert again.status_code == 400 and "exists" in again.text
    bad = client.post("/settings/topics", data={"csrf_token": csrf, "key": "a b", "name": "x"})
    assert bad.status_code == 400 and "topic key must be" in bad.text and 'value="a b"' in bad.text
    maybe = client.post(
        "/settings/topics", data={"csrf_token": csrf, "key": "news", "name": "x", "consent": "maybe"}
    )
    assert maybe.status_code == 400 and "Consent: choose opt-in or opt-out." in maybe.text
    with TestClient(client.app) as viewer:
        viewer_csrf = ui_login(viewer, tenant.viewer_email, tenant.password)
        assert "Only admins can add topics." in viewer.get("/settings/topics").text
        for path, data in [
            ("/settings/topics", {"key": "sneaky"}),
            ("/settings/limits/caps", {"cap_email_day": "0"}),
            ("/settings/limits/quiet-hours", {"quiet_sms_start": ""}),
            ("/settings/channels/email", {"from_name": "x"}),
        ]:
            assert viewer.post(path, data={"csrf_token": viewer_csrf, **data}).status_code == 403, path
    with runtime.sessions() as db:
        topics = consent_service.list_topics(db, workspace_id=tenant.workspace_id)
        assert [(t.key, t.opt_in) for t in topics] == [("offers", False)]
    assert "caps" not in _workspace_settings(runtime, tenant)
    assert "topic.created" in client.get("/settings/audit").text
