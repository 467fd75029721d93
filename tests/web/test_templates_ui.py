"""Templates pages through the TestClient: list, create, editor, live preview with issues next to fields,
save with errors kept in place, duplicate, archive, and viewers read-only."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from rapport.runtime import Runtime
from tests.content.data import add_profile, add_segment
from tests.support.tenants import Tenant
from tests.web.ui import ui_login


def _new(client: TestClient, csrf: str, name: str, channel: str) -> int:
    answer = client.post(
        "/templates/new", data={"csrf_token": csrf, "name": name, "channel": channel}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/templates/(\d+)", answer.headers["location"])
    assert found
    return int(found.group(1))


def _form(**parts: str) -> dict[str, str]:
    return {f"part_{k}": v for k, v in parts.items()}


def test_create_edit_preview_and_save_an_email(client: TestClient, runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(
        runtime, tenant.workspace_id, traits={"email": "ada@x.io", "first_name": "Ada", "plan": "pro"}
    )
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    tid = _new(client, csrf, "Welcome", "email")
    page = client.get(f"/templates/{tid}")
    assert page.status_code == 200
    assert "'unsafe-inline'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'name="part_subject"' in page.text and 'name="part_html"' in page.text
    assert "Ada" in page.text  # the customer chooser lists the profile

    form = {
        "csrf_token": csrf,
        "name": "Welcome",
        "preview_as": "customer",
        "preview_profile": str(pid),
        **_form(subject="Hi {{ first_name }}", preheader="", html="<p>{{ blocks.hero }}</p>", text=""),
        "block_key": "k1",
        "block_k1_name": "hero",
        "block_k1_default": "Hello",
        "variant_k1": "v1",
        "variant_k1_v1_condition": 'plan = "pro"',
        "variant_k1_v1_source": "Pro <b>perks</b>",
        "variant_k1_v1_name": "pro",
    }
    preview = client.post(f"/templates/{tid}/preview", data=form, headers={"X-CSRF-Token": csrf})
    assert preview.status_code == 200
    assert 'data-testid="preview-subject">Hi Ada<' in preview.text
    assert 'data-testid="choice-hero">pro<' in preview.text
    assert 'srcdoc="&lt;p&gt;Pro &lt;b&gt;perks&lt;/b&gt;&lt;/p&gt;"' in preview.text
    assert "No errors" in preview.text

    broken = {
        **form,
        "part_html": "<p>ok</p>\n<p>{{ first_name | nope }}</p>",
        "variant_k1_v1_condition": "plan =",
    }
    preview = client.post(f"/templates/{tid}/preview", data=broken, headers={"X-CSRF-Token": csrf})
    html_issues = re.search(r'id="issues-part_html" hx-swap-oob="true".*?</div>', preview.text, re.S)
    assert html_issues and "line 2" in html_issues.group(0) and "unknown filter" in html_issues.group(0)
    condition = re.search(
        r'id="issues-variant_k1_v1_condition" hx-swap-oob="true".*?</div>', preview.text, re.S
    )
    assert condition and "line 1, column 7" in condition.group(0)

    refused = client.post(f"/templates/{tid}", data=broken, follow_redirects=False)
    assert refused.status_code == 200 and "Not saved" in refused.text
    assert "{{ first_name | nope }}" in refused.text  # the edit is kept
    saved = client.post(f"/templates/{tid}", data={**form, "expected_version": "1"}, follow_redirects=False)
    assert saved.status_code == 303
    data = client.get(f"/api/v1/templates/{tid}", headers=tenant.secret_headers).json()
    assert data["version"] == 2 and data["content"]["subject"] == "Hi {{ first_name }}"
    assert data["blocks"] == [
        {
            "name": "hero",
            "default": "Hello",
            "variants": [{"condition": 'plan = "pro"', "source": "Pro <b>perks</b>", "name": "pro"}],
        }
    ]
    stale = client.post(f"/templates/{tid}", data={**form, "expected_version": "1"}, follow_redirects=False)
    assert stale.status_code == 200 and "changed meanwhile" in stale.text
    # a cleared name is refused, not quietly replaced by the old one; a version that is not a number does
    # not skip the check against overlapping edits
    nameless = client.post(f"/templates/{tid}", data={**form, "name": " ", "expected_version": "2"})
    assert nameless.status_code == 200 and "Give the template a name" in nameless.text
    tampered = client.post(f"/templates/{tid}", data={**form, "expected_version": "one"})
    assert tampered.status_code == 200 and "version field is not a number" in tampered.text
    assert client.get(f"/api/v1/templates/{tid}", headers=tenant.secret_headers).json()["version"] == 2

    copy = client.post(f"/templates/{tid}/duplicate", data={"csrf_token": csrf}, follow_redirects=False)
    assert copy.status_code == 303
    archived = client.post(f"/templates/{tid}/archive", data={"csrf_token": csrf}, follow_redirects=False)
    assert archived.status_code == 303
    listing = client.get("/templates").text
    assert "Welcome (copy)" in listing and f'href="/templates/{tid}"' not in listing
    assert f'href="/templates/{tid}"' in client.get("/templates?archived=true").text


def test_sms_preview_counts_segments_and_fragments_add_blocks(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"phone": "+447700900001", "first_name": "Zoë"})
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    tid = _new(client, csrf, "Text", "sms")
    form = {"csrf_token": csrf, "preview_lookup": str(pid), **_form(body="Hi {{ first_name }} " + "x" * 70)}
    preview = client.post(f"/templates/{tid}/preview", data=form, headers={"X-CSRF-Token": csrf})
    counter = re.search(r'data-testid="sms-counter">(.*?)</p>', preview.text, re.S)
    assert counter and "77 UTF-16 units" in counter.group(1) and "2 segments" in counter.group(1)
    block = client.get("/templates/editor/block")
    keys = re.findall(r'name="block_key" value="([0-9a-f]+)"', block.text)
    assert len(keys) == 1 and f'name="variant_{keys[0]}"' in block.text
    variant = client.get(f"/templates/editor/variant?block={keys[0]}")
    assert f'name="variant_{keys[0]}"' in variant.text
    assert client.get("/templates/editor/variant?block=../x").status_code == 404


def test_viewers_can_look_and_preview_but_not_change(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "v@x.io", "first_name": "Vi"})
    made = client.post(
        "/api/v1/templates",
        json={"name": "Seen", "channel": "push", "content": {"title": "Hey {{ first_name }}"}},
        headers=tenant.secret_headers,
    )
    tid = made.json()["id"]
    csrf = ui_login(client, tenant.viewer_email, tenant.password)
    listing = client.get("/templates")
    assert "Seen" in listing.text and "Create template" not in listing.text
    page = client.get(f"/templates/{tid}")
    assert '<fieldset class="tpl-fields" disabled>' in page.text and ">Save</button>" not in page.text
    preview = client.post(
        f"/templates/{tid}/preview",
        data={"csrf_token": csrf, "preview_profile": str(pid)},
        headers={"X-CSRF-Token": csrf},
    )
    assert 'data-testid="preview-title">Hey Vi<' in preview.text
    for path in (
        f"/templates/{tid}",
        f"/templates/{tid}/archive",
        f"/templates/{tid}/duplicate",
        "/templates/new",
    ):
        answer = client.post(
            path, data={"csrf_token": csrf, "name": "x", "part_title": "x"}, follow_redirects=False
        )
        assert answer.status_code == 403, path
    assert client.get(f"/api/v1/templates/{tid}", headers=tenant.secret_headers).json()["version"] == 1


def test_another_workspaces_template_is_not_found(
    client: TestClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    made = client.post(
        "/api/v1/templates",
        json={"name": "Mine", "channel": "sms", "content": {"body": "x"}},
        headers=other_tenant.secret_headers,
    )
    ui_login(client, tenant.admin_email, tenant.password)
    assert client.get(f"/templates/{made.json()['id']}").status_code == 404


def test_preview_as_five_random_members_of_a_segment(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    for i in range(6):
        add_profile(
            runtime, tenant.workspace_id, traits={"email": f"s{i}@x.io", "first_name": f"S{i}", "vip": True}
        )
    sid = add_segment(runtime, tenant.workspace_id, "VIP", "vip = true")
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    tid = _new(client, csrf, "Push", "push")
    page = client.get(f"/templates/{tid}")
    assert f'<option value="{sid}">VIP (6)</option>' in page.text
    form = {
        "csrf_token": csrf,
        "preview_as": "segment",
        "preview_segment": str(sid),
        **_form(title="Hi {{ first_name }}"),
    }
    preview = client.post(f"/templates/{tid}/preview", data=form, headers={"X-CSRF-Token": csrf})
    titles = re.findall(r'data-testid="preview-title">Hi (S\d)<', preview.text)
    assert len(titles) == 5 and len(set(titles)) == 5


def test_a_block_without_a_valid_name_is_pointed_out_and_the_others_still_preview(
    client: TestClient, runtime: Runtime, tenant: Tenant
) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"phone": "+447700900011", "first_name": "Al"})
    csrf = ui_login(client, tenant.admin_email, tenant.password)
    tid = _new(client, csrf, "Blocks", "sms")
    form = {
        "csrf_token": csrf,
        "preview_profile": str(pid),
        "part_body": "{{ blocks.a }} Hi",
        "block_key": ["k1", "k2"],
        "block_k1_name": "a",
        "block_k1_default": "A!",
        "block_k2_name": "2bad",
        "block_k2_default": "B!",
    }
    preview = client.post(f"/templates/{tid}/preview", data=form, headers={"X-CSRF-Token": csrf})
    assert "Block 2bad: give it a name" in preview.text
    assert 'data-testid="preview-sms">A! Hi<' in preview.text
    refused = client.post(f"/templates/{tid}", data=form, follow_redirects=False)
    assert refused.status_code == 200 and "Block 2bad: give it a name" in refused.text
    assert 'value="2bad"' in refused.text  # the editor keeps what was typed
