"""The templates and snippets API on both databases: scopes, errors with positions, preview, pagination."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rapport.accounts import service as accounts_service
from rapport.runtime import Runtime
from tests.content.data import add_profile, add_segment
from tests.support.tenants import Tenant

EMAIL = {
    "subject": "Hi {{ first_name }}",
    "preheader": "",
    "html": "<body><h1>Hi {{ first_name }}</h1>{{ blocks.hero }}</body>",
}
BLOCKS = [
    {
        "name": "hero",
        "variants": [{"condition": 'plan = "pro"', "source": "<p>Pro</p>", "name": "pro"}],
        "default": "<p>Hello</p>",
    }
]


def _key(runtime: Runtime, tenant: Tenant, *scopes: str) -> dict[str, str]:
    with runtime.sessions() as db:
        key = accounts_service.create_key(
            db, workspace_id=tenant.workspace_id, kind="secret", name="k", scopes=list(scopes), actor="test"
        )
        db.commit()
    return {"Authorization": f"Bearer {key.plain}"}


def test_create_read_update_list_archive_duplicate(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    made = client.post(
        "/api/v1/templates",
        json={"name": "Welcome", "channel": "email", "content": EMAIL, "blocks": BLOCKS},
        headers=h,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["version"], body["content"]["text"], body["warnings"]) == (1, "", [])
    tid = body["id"]
    changed = client.patch(
        f"/api/v1/templates/{tid}",
        json={"content": {**EMAIL, "subject": "Yo {{ frist_name }}"}, "expected_version": 1},
        headers=h,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    [warning] = changed.json()["warnings"]
    assert (warning["part"], warning["code"], warning["line"], warning["column"]) == (
        "subject",
        "unknown_variable",
        1,
        7,
    )
    stale = client.patch(
        f"/api/v1/templates/{tid}", json={"description": "x", "expected_version": 1}, headers=h
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "template_version_conflict"
    copy = client.post(f"/api/v1/templates/{tid}/duplicate", json={}, headers=h)
    assert copy.status_code == 201 and copy.json()["name"] == "Welcome (copy)"
    sms = client.post(
        "/api/v1/templates", json={"name": "Text", "channel": "sms", "content": {"body": "Hi"}}, headers=h
    )
    assert sms.status_code == 201
    assert [t["name"] for t in client.get("/api/v1/templates?channel=email", headers=h).json()] == [
        "Welcome (copy)",
        "Welcome",
    ]
    assert len(client.get("/api/v1/templates?limit=1&offset=1", headers=h).json()) == 1
    assert [t["name"] for t in client.get("/api/v1/templates?q=COPY", headers=h).json()] == ["Welcome (copy)"]
    assert client.delete(f"/api/v1/templates/{tid}", headers=h).json()["archived_at"] is not None
    assert tid not in {t["id"] for t in client.get("/api/v1/templates", headers=h).json()}
    assert tid in {t["id"] for t in client.get("/api/v1/templates?include_archived=true", headers=h).json()}
    assert client.get(f"/api/v1/templates/{tid}", headers=h).json()["version"] == 2
    taken = client.post(
        "/api/v1/templates", json={"name": "Text", "channel": "sms", "content": {"body": "x"}}, headers=h
    )
    assert taken.status_code == 409


def test_invalid_templates_answer_400_with_every_position(client: TestClient, tenant: Tenant) -> None:
    h = tenant.secret_headers
    content = {"subject": "Hi {{ first_name", "html": "<p>ok</p>\n{% if x %}<p>never closed</p>"}
    answer = client.post(
        "/api/v1/templates", json={"name": "Bad", "channel": "email", "content": content}, headers=h
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "invalid_template"
    got = {(e["part"], e["code"], e["line"]) for e in error["details"]["errors"]}
    assert got == {("subject", "syntax_error", 1), ("html", "syntax_error", 2)}
    checked = client.post(
        "/api/v1/templates/validate",
        json={
            "channel": "email",
            "content": {"subject": "x", "html": "{{ blocks.hero }}"},
            "blocks": [{"name": "hero", "variants": [{"condition": "plan = ", "source": "x"}]}],
        },
        headers=h,
    )
    assert checked.status_code == 200
    result = checked.json()
    assert result["ok"] is False
    [condition] = result["errors"]
    assert (condition["part"], condition["code"], condition["line"], condition["column"]) == (
        "blocks.hero.variants.1.condition",
        "invalid_condition",
        1,
        8,
    )
    unknown_part = client.post(
        "/api/v1/templates", json={"name": "X", "channel": "sms", "content": {"html": "x"}}, headers=h
    )
    assert unknown_part.status_code == 400 and unknown_part.json()["error"]["code"] == "unknown_part"


def test_scopes_reading_writing_and_previewing(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(
        runtime, tenant.workspace_id, traits={"email": "ada@x.io", "first_name": "Ada", "plan": "pro"}
    )
    made = client.post(
        "/api/v1/templates",
        json={"name": "W", "channel": "email", "content": EMAIL, "blocks": BLOCKS},
        headers=tenant.secret_headers,
    )
    tid = made.json()["id"]
    reader = _key(runtime, tenant, "campaigns:read")
    assert client.get(f"/api/v1/templates/{tid}", headers=reader).status_code == 200
    refused = client.post(
        "/api/v1/templates", json={"name": "Z", "channel": "sms", "content": {"body": "x"}}, headers=reader
    )
    assert refused.status_code == 403
    no_profiles = client.post(f"/api/v1/templates/{tid}/preview", json={"profile_id": pid}, headers=reader)
    assert no_profiles.status_code == 403
    both = _key(runtime, tenant, "campaigns:read", "profiles:read")
    shown = client.post(f"/api/v1/templates/{tid}/preview", json={"email": "ada@x.io"}, headers=both)
    assert shown.status_code == 200, shown.text
    [item] = shown.json()["items"]
    assert item["parts"]["subject"] == "Hi Ada" and item["choices"] == [
        {"block": "hero", "variant": "pro", "index": 0}
    ]
    assert "<p>Pro</p>" in item["parts"]["html"] and item["text_generated"] and item["mime_bytes"] > 0
    assert client.get("/api/v1/templates", headers=tenant.write_headers).status_code in (401, 403)


def test_preview_of_unsaved_edits_shows_errors_per_part_and_limits(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    h = tenant.secret_headers
    pid = add_profile(runtime, tenant.workspace_id, traits={"phone": "+447700900009", "first_name": "Ada"})
    tid = client.post(
        "/api/v1/templates", json={"name": "T", "channel": "sms", "content": {"body": "Hi"}}, headers=h
    ).json()["id"]
    body = "{% for i in (1..100000) %}{% for j in (1..100000) %}{{ i }}{% endfor %}{% endfor %}"
    answer = client.post(
        f"/api/v1/templates/{tid}/preview", json={"profile_id": pid, "content": {"body": body}}, headers=h
    )
    assert answer.status_code == 200
    [item] = answer.json()["items"]
    assert item["ok"] is False and item["parts"] == {}
    assert item["errors"][0]["part"] == "body"
    assert item["errors"][0]["reason"] in ("loop_limit", "time_limit")
    long = "€" * 81
    answer = client.post(
        f"/api/v1/templates/{tid}/preview",
        json={"profile_id": pid, "content": {"body": f"{{{{ first_name }}}} {long}"}},
        headers=h,
    )
    [item] = answer.json()["items"]
    assert item["sms"] == {
        "encoding": "GSM-7",
        "units": 166,
        "segments": 2,
        "per_segment": 153,
        "remaining": 139,  # 4 + 74 € (148) fill part one; 7 € (14) in part two
    }
    none = client.post(f"/api/v1/templates/{tid}/preview", json={}, headers=h)
    assert none.status_code == 400 and none.json()["error"]["code"] == "no_recipient"


def test_preview_a_segment_sample(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    h = tenant.secret_headers
    for i in range(7):
        add_profile(
            runtime, tenant.workspace_id, traits={"email": f"m{i}@x.io", "first_name": f"M{i}", "vip": True}
        )
    add_profile(runtime, tenant.workspace_id, traits={"email": "z@x.io", "first_name": "Z", "vip": False})
    sid = add_segment(runtime, tenant.workspace_id, "VIP", "vip = true")
    tid = client.post(
        "/api/v1/templates",
        json={
            "name": "T",
            "channel": "push",
            "content": {"title": "Hi {{ first_name }}", "url": "https://x.io"},
        },
        headers=h,
    ).json()["id"]
    answer = client.post(f"/api/v1/templates/{tid}/preview", json={"segment_id": sid}, headers=h)
    items = answer.json()["items"]
    assert len(items) == 5 and len({i["profile_id"] for i in items}) == 5
    assert all(i["parts"]["title"] == f"Hi {i['label']}" for i in items) and "Z" not in {
        i["label"] for i in items
    }
    assert (
        client.post(f"/api/v1/templates/{tid}/preview", json={"segment_id": sid + 99}, headers=h).status_code
        == 404
    )


def test_snippets_crud_and_use(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    h = tenant.secret_headers
    bad = client.post("/api/v1/snippets", json={"name": "f", "source": "{% if %}"}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["errors"][0]["line"] == 1
    made = client.post(
        "/api/v1/snippets", json={"name": "footer", "source": "<small>{{ x }}</small>"}, headers=h
    )
    assert made.status_code == 201 and made.json()["warnings"][0]["code"] == "unknown_variable"
    sid = made.json()["id"]
    tid = client.post(
        "/api/v1/templates",
        json={
            "name": "T",
            "channel": "email",
            "content": {"subject": "s", "html": '{% render "footer", x: 1 %}'},
        },
        headers=h,
    ).json()["id"]
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "a@x.io"})
    shown = client.post(f"/api/v1/templates/{tid}/preview", json={"profile_id": pid}, headers=h).json()
    assert shown["items"][0]["parts"]["html"] == "<small>1</small>"
    assert [s["name"] for s in client.get("/api/v1/snippets", headers=h).json()] == ["footer"]
    in_use = client.delete(f"/api/v1/snippets/{sid}", headers=h)
    assert in_use.status_code == 409 and "T" in in_use.json()["error"]["message"]
    client.delete(f"/api/v1/templates/{tid}", headers=h)
    assert client.patch(f"/api/v1/snippets/{sid}", json={"source": "y"}, headers=h).json()["source"] == "y"
    assert client.delete(f"/api/v1/snippets/{sid}", headers=h).status_code == 200
    assert client.get(f"/api/v1/snippets/{sid}", headers=h).status_code == 404
