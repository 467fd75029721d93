"""The content service on both databases: validation with positions, versions, snippets, rule blocks,
rendering for a recipient, limits (R22) and previews."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from rapport.content import service
from rapport.content.rendering import RenderedMessage, TemplateDraft
from rapport.content.schemas import (
    BlockIn,
    PreviewBody,
    SnippetCreate,
    SnippetUpdate,
    TemplateCreate,
    TemplateUpdate,
    VariantIn,
)
from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.models import AuditEntry, MessageTemplate
from rapport.personalize import RenderFailed
from rapport.runtime import Runtime
from tests.content.data import NOW, add_event, add_profile, add_segment
from tests.support.tenants import Tenant

EMAIL = {
    "subject": "Hello {{ first_name | default: 'there' }}",
    "preheader": "News for {{ profile.city }}",
    "html": "<html><body><h1>Hi {{ first_name }}</h1>{{ blocks.hero }}<p>Bye</p></body></html>",
    "text": "",
}
HERO = BlockIn(
    name="hero",
    variants=[
        VariantIn(condition='plan = "pro"', source="<p>Pro perks</p>", name="pro"),
        VariantIn(condition='in segment "Leeds"', source="<p>Leeds deals</p>", name="leeds"),
    ],
    default="<p>Welcome</p>",
)


def _create(runtime: Runtime, tenant: Tenant, *, segment: bool = True, **fields: Any) -> MessageTemplate:
    if segment:  # HERO names it
        add_segment(runtime, tenant.workspace_id, "Leeds", 'city = "Leeds"')
    data = TemplateCreate(
        **{"name": "Welcome", "channel": "email", "content": EMAIL, "blocks": [HERO], **fields}
    )
    with runtime.sessions() as db:
        template, _report = service.create_template(
            db, workspace_id=tenant.workspace_id, data=data, actor="test", now=NOW
        )
        db.commit()
        db.expunge(template)
        return template


def _render(
    runtime: Runtime, tenant: Tenant, template: MessageTemplate | TemplateDraft, profile_id: int, **kw: Any
) -> RenderedMessage:
    with runtime.sessions() as db:
        return service.render_template(
            db, workspace_id=tenant.workspace_id, template=template, profile_id=profile_id, now=NOW, **kw
        )


def test_a_syntax_error_refuses_the_save_with_its_part_line_and_column(
    runtime: Runtime, tenant: Tenant
) -> None:
    broken = {**EMAIL, "html": "<p>one</p>\n<p>two</p>\n<p>{{ first_name | upcase </p>"}
    with pytest.raises(ValidationFailed) as caught:
        _create(runtime, tenant, content=broken)
    assert caught.value.code == "invalid_template"
    errors = caught.value.details["errors"]
    assert [(e["part"], e["code"], e["line"]) for e in errors] == [("html", "syntax_error", 3)]
    assert errors[0]["column"] >= 4
    assert "html, line 3" in caught.value.message


def test_unknown_variables_warn_but_save(runtime: Runtime, tenant: Tenant) -> None:
    add_profile(
        runtime,
        tenant.workspace_id,
        traits={"email": "a@x.io", "first_name": "Ada", "plan": "pro", "city": "Leeds"},
    )
    add_segment(runtime, tenant.workspace_id, "Leeds", 'city = "Leeds"')
    content = {**EMAIL, "subject": "Hi {{ frist_name }}"}
    data = TemplateCreate(name="W", channel="email", content=content, blocks=[HERO])
    with runtime.sessions() as db:
        template, report = service.create_template(
            db, workspace_id=tenant.workspace_id, data=data, actor="test", now=NOW
        )
        db.commit()
    assert template.id is not None and report.ok
    [warning] = [w for w in report.warnings if w.code == "unknown_variable"]
    assert (warning.part, warning.line, warning.column, warning.suggestion) == ("subject", 1, 7, "first_name")
    assert len(report.warnings) == 1  # profile.city is a known trait of this workspace


def test_required_parts_unknown_parts_blocks_and_conditions_are_checked(
    runtime: Runtime, tenant: Tenant
) -> None:
    with runtime.sessions() as db:
        report = service.check_template(
            db,
            workspace_id=tenant.workspace_id,
            channel="email",
            content={"subject": " ", "html": "{{ blocks.missing }}"},
            blocks=[
                BlockIn(
                    name="hero",
                    variants=[VariantIn(condition='plan = "pro" and\n  city ==', source="x")],
                    default="y",
                )
            ],
        )
        with pytest.raises(ValidationFailed) as caught:
            service.check_template(
                db, workspace_id=tenant.workspace_id, channel="sms", content={"subject": "x"}, blocks=[]
            )
    assert caught.value.code == "unknown_part"
    found = {(e.part, e.code): e for e in report.errors}
    assert ("subject", "required") in found
    assert (found["html", "unknown_block"].line, found["html", "unknown_block"].column) == (1, 4)
    condition = found["blocks.hero.variants.1.condition", "invalid_condition"]
    assert condition.line == 2 and condition.column is not None
    assert [w.code for w in report.warnings] == ["unused_block"]


def test_update_bumps_the_version_only_when_content_changes_then_archive_and_duplicate(
    runtime: Runtime, tenant: Tenant
) -> None:
    template = _create(runtime, tenant)
    with runtime.sessions() as db:
        same, _ = service.update_template(
            db,
            workspace_id=tenant.workspace_id,
            template_id=template.id,
            data=TemplateUpdate(content=EMAIL, description="d"),
            actor="test",
            now=NOW,
        )
        assert same.version == 1 and same.description == "d"
        changed, _ = service.update_template(
            db,
            workspace_id=tenant.workspace_id,
            template_id=template.id,
            data=TemplateUpdate(content={**EMAIL, "subject": "New"}, expected_version=1),
            actor="test",
            now=NOW,
        )
        assert changed.version == 2 and changed.content["subject"] == "New"
        with pytest.raises(Conflict) as stale:
            service.update_template(
                db,
                workspace_id=tenant.workspace_id,
                template_id=template.id,
                data=TemplateUpdate(content=EMAIL, expected_version=1),
                actor="test",
                now=NOW,
            )
        assert stale.value.code == "template_version_conflict"
        first = service.duplicate_template(
            db, workspace_id=tenant.workspace_id, template_id=template.id, name=None, actor="t", now=NOW
        )
        second = service.duplicate_template(
            db, workspace_id=tenant.workspace_id, template_id=template.id, name=None, actor="t", now=NOW
        )
        assert (first.name, second.name, first.version) == ("Welcome (copy)", "Welcome (copy 2)", 1)
        assert first.blocks == changed.blocks and first.content == changed.content
        archived = service.archive_template(
            db, workspace_id=tenant.workspace_id, template_id=template.id, actor="t", now=NOW
        )
        assert archived.archived_at is not None
        with pytest.raises(Conflict):
            service.update_template(
                db,
                workspace_id=tenant.workspace_id,
                template_id=template.id,
                data=TemplateUpdate(description="x"),
                actor="t",
                now=NOW,
            )
        with pytest.raises(Conflict):
            _create_in(db, tenant, name="Welcome (copy)")
        db.commit()


def _create_in(db: Any, tenant: Tenant, **fields: Any) -> MessageTemplate:
    data = TemplateCreate(
        **{"name": "Welcome", "channel": "email", "content": EMAIL, "blocks": [HERO], **fields}
    )
    return service.create_template(db, workspace_id=tenant.workspace_id, data=data, actor="t", now=NOW)[0]


def test_snippets_render_and_include_and_unknown_ones_are_errors(runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "a@x.io", "first_name": "Ada"})
    with runtime.sessions() as db:
        footer, _ = service.create_snippet(
            db,
            workspace_id=tenant.workspace_id,
            data=SnippetCreate(name="footer", source="<footer>Bye {{ first_name }}</footer>"),
            actor="t",
            now=NOW,
        )
        with pytest.raises(ValidationFailed) as bad:
            service.create_snippet(
                db,
                workspace_id=tenant.workspace_id,
                data=SnippetCreate(name="wrap", source='{% render "nope" %}'),
                actor="t",
                now=NOW,
            )
        assert bad.value.details["errors"][0]["code"] == "snippet_not_found"
        with pytest.raises(ValidationFailed) as unknown:
            _create_in(db, tenant, content={**EMAIL, "html": '<p>x</p>{% render "fotter" %}'}, blocks=[])
        [error] = unknown.value.details["errors"]
        assert (error["code"], error["line"], error["suggestion"]) == ("snippet_not_found", 1, "footer")
        template = _create_in(
            db,
            tenant,
            content={
                **EMAIL,
                "preheader": "",
                "html": '<body>{% render "footer" %}|{% include "footer" %}</body>',
            },
            blocks=[],
        )
        db.commit()
        rendered = service.render_template(
            db, workspace_id=tenant.workspace_id, template=template, profile_id=pid, now=NOW
        )
        assert rendered.parts["html"].count("<footer>Bye Ada</footer>") == 2
        with pytest.raises(Conflict) as in_use:
            service.delete_snippet(db, workspace_id=tenant.workspace_id, snippet_id=footer.id, actor="t")
        assert "Welcome" in in_use.value.message
        with pytest.raises(Conflict):
            service.update_snippet(
                db,
                workspace_id=tenant.workspace_id,
                snippet_id=footer.id,
                data=SnippetUpdate(name="foot"),
                actor="t",
                now=NOW,
            )
        service.update_snippet(
            db,
            workspace_id=tenant.workspace_id,
            snippet_id=footer.id,
            data=SnippetUpdate(source="<footer>Ciao</footer>"),
            actor="t",
            now=NOW,
        )
        db.commit()
        again = service.render_template(
            db, workspace_id=tenant.workspace_id, template=template, profile_id=pid, now=NOW
        )
        assert again.parts["html"] == "<body><footer>Ciao</footer>|<footer>Ciao</footer></body>"


def test_blocks_choose_by_trait_segment_or_default(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    pro = add_profile(
        runtime, ws, traits={"email": "p@x.io", "first_name": "Pat", "plan": "pro", "city": "Leeds"}
    )
    leeds = add_profile(
        runtime, ws, traits={"email": "l@x.io", "first_name": "Lee", "plan": "free", "city": "Leeds"}
    )
    other = add_profile(runtime, ws, traits={"email": "o@x.io", "first_name": "Oli", "city": "York"})
    template = _create(runtime, tenant)
    got = {pid: _render(runtime, tenant, template, pid) for pid in (pro, leeds, other)}
    assert got[pro].variants == {"hero": "pro"}
    assert got[leeds].variants == {"hero": "leeds"}
    assert got[other].variants == {"hero": "default"}
    assert "<p>Leeds deals</p>" in got[leeds].parts["html"]
    assert "<p>Welcome</p>" in got[other].parts["html"] and "Pro perks" not in got[other].parts["html"]
    email = got[pro].parts
    assert email["subject"] == "Hello Pat"
    assert 'aria-hidden="true">News for Leeds</div>' in email["html"]
    assert email["html"].index("<body>") < email["html"].index("News for Leeds") < email["html"].index("<h1>")
    assert "Pro perks" in email["text"] and "<p>" not in email["text"] and got[pro].text_generated


def test_blocks_can_depend_on_channel_local_time_and_events(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    london = add_profile(runtime, ws, traits={"phone": "+447700900001", "first_name": "Al"})
    tokyo = add_profile(
        runtime, ws, traits={"phone": "+447700900002", "first_name": "Bo"}, timezone="Asia/Tokyo"
    )
    add_event(runtime, ws, london, "order_completed", NOW - timedelta(days=2), total=120)
    block = BlockIn(
        name="greet",
        variants=[
            VariantIn(condition='channel = "email"', source="never on sms", name="email"),
            VariantIn(
                condition="did order_completed where total > 100 in last 7 days",
                source="Thanks!",
                name="buyer",
            ),
            VariantIn(
                condition='time_of_day = "evening" and weekday = "tuesday"', source="Good evening", name="eve"
            ),
            VariantIn(condition="local_hour < 12", source="Good morning", name="morning"),
        ],
        default="Hello",
    )
    with runtime.sessions() as db:
        template, _ = service.create_template(
            db,
            workspace_id=ws,
            data=TemplateCreate(
                name="sms",
                channel="sms",
                content={"body": "{{ blocks.greet }} {{ first_name }}"},
                blocks=[block],
            ),
            actor="t",
            now=NOW,
        )
        db.commit()
        db.expunge(template)
    assert _render(runtime, tenant, template, london).parts == {"body": "Thanks! Al"}
    assert _render(runtime, tenant, template, tokyo).parts == {"body": "Good evening Bo"}
    later = _render(runtime, tenant, template, tokyo, extra_context={"timezone": "Europe/London"})
    assert later.variants == {"greet": "morning"}


def test_limits_fail_the_render_with_a_reason(runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "a@x.io"})
    loop = TemplateDraft(
        channel="email",
        content={
            "subject": "x",
            "html": "{% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %}",
        },
        blocks=[],
    )
    with pytest.raises(RenderFailed) as runaway:
        _render(runtime, tenant, loop, pid)
    assert runaway.value.reason in ("loop_limit", "time_limit")
    assert runaway.value.message.startswith("html: ") and "html: html" not in runaway.value.message
    huge = TemplateDraft(
        channel="sms",
        content={
            "body": "{% for a in (1..9000) %}{{ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' }}{% endfor %}"
        },
        blocks=[],
    )
    with pytest.raises(RenderFailed) as big:
        _render(runtime, tenant, huge, pid)
    assert big.value.reason == "output_limit"


def test_preview_as_a_profile_by_email_and_user_id_in_every_format(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    pid = add_profile(
        runtime,
        ws,
        traits={
            "email": "ada@x.io",
            "phone": "+447700900003",
            "first_name": "Ada",
            "city": "Hull",
            "plan": "free",
        },
        user_id="u-1",
    )
    template = _create(runtime, tenant)
    with runtime.sessions() as db:
        by_email = service.preview(
            db,
            workspace_id=ws,
            draft=TemplateDraft.of(template),
            body=PreviewBody(email="ADA@x.io"),
            now=NOW,
        )
        [item] = by_email.items
        assert item.profile_id == pid and item.ok and item.label == "Ada"
        assert item.parts["subject"] == "Hello Ada" and item.text_generated
        assert item.mime_bytes is not None and item.mime_bytes > len(item.parts["html"])
        sms = TemplateDraft(channel="sms", content={"body": "Hi {{ first_name }} 😀"}, blocks=[])
        [sms_item] = service.preview(
            db, workspace_id=ws, draft=sms, body=PreviewBody(user_id="u-1"), now=NOW
        ).items
        assert sms_item.sms is not None and (sms_item.sms.encoding, sms_item.sms.segments) == ("UCS-2", 1)
        hook = TemplateDraft(
            channel="webhook",
            content={
                "url": "https://hooks.example.com/x",
                "body": '{"id": {{ profile.id }}, "name": "{{ first_name }}"}',
            },
            blocks=[],
        )
        [hook_item] = service.preview(
            db, workspace_id=ws, draft=hook, body=PreviewBody(profile_id=pid), now=NOW
        ).items
        assert hook_item.webhook_json == {"id": pid, "name": "Ada"}
        broken = TemplateDraft(
            channel="push",
            content={
                "title": "Hi {{ first_name }}",
                "body": "{% for x in (1..3) %}{{ x | nope }}{% endfor %}",
            },
            blocks=[],
        )
        [push_item] = service.preview(
            db, workspace_id=ws, draft=broken, body=PreviewBody(profile_id=pid), now=NOW
        ).items
        assert push_item.parts == {"title": "Hi Ada"} and not push_item.ok
        assert [(e.part, e.reason) for e in push_item.errors] == [("body", "unknown_filter")]
        with pytest.raises(NotFound):
            service.preview(db, workspace_id=ws, draft=hook, body=PreviewBody(email="nobody@x.io"), now=NOW)


def test_preview_samples_five_random_members_of_a_segment(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    members = {
        add_profile(
            runtime,
            ws,
            traits={"email": f"m{i}@x.io", "first_name": f"M{i}", "city": "Leeds", "plan": "free"},
        )
        for i in range(8)
    }
    add_profile(runtime, ws, traits={"email": "out@x.io", "first_name": "Out", "city": "York"})
    sid = add_segment(runtime, ws, "Leeds", 'city = "Leeds"')
    template = _create(runtime, tenant, segment=False)
    with runtime.sessions() as db:
        read = service.preview(
            db, workspace_id=ws, draft=TemplateDraft.of(template), body=PreviewBody(segment_id=sid), now=NOW
        )
    ids = [item.profile_id for item in read.items]
    assert len(ids) == 5 and len(set(ids)) == 5 and set(ids) <= members
    assert all(item.choices[0].variant == "leeds" for item in read.items)


def test_message_content_is_rendered_at_send_time(runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "a@x.io", "first_name": "Ada"})
    template = _create(
        runtime,
        tenant,
        segment=False,
        content={**EMAIL, "preheader": "", "html": "<p>{{ campaign.name }} {{ unsubscribe_url }}</p>"},
        blocks=[],
    )
    content = {**service.message_content(template), "campaign": {"name": "Spring"}}
    assert content["template_id"] == template.id and content["template_version"] == 1
    with runtime.sessions() as db:
        rendered = service.render_outbox_content(
            db,
            workspace_id=tenant.workspace_id,
            content=content,
            profile_id=pid,
            now=NOW,
            links={"unsubscribe": "https://r.example/u/T"},
        )
        assert rendered.parts["html"] == "<p>Spring https://r.example/u/T</p>"
        cache: dict[tuple[int, int], Any] = {}
        for _ in range(2):
            again = service.render_outbox_content(
                db, workspace_id=tenant.workspace_id, content=content, profile_id=pid, now=NOW, cache=cache
            )
            assert again.parts["html"] == "<p>Spring </p>"  # no links given: no unsubscribe_url
        assert list(cache) == [(template.id, 1)]
        with pytest.raises(RenderFailed) as missing:
            service.render_outbox_content(
                db, workspace_id=tenant.workspace_id + 999, content=content, profile_id=pid, now=NOW
            )
        assert missing.value.reason == "template_missing"


def test_a_prefetched_batch_renders_exactly_like_one_by_one(runtime: Runtime, tenant: Tenant) -> None:
    ws = tenant.workspace_id
    ids = [
        add_profile(
            runtime, ws, traits={"email": f"b{i}@x.io", "first_name": f"B{i}", "plan": plan, "city": city}
        )
        for i, (plan, city) in enumerate([("pro", "York"), ("free", "Leeds"), ("free", "York")])
    ]
    template = _create(runtime, tenant)
    singly = [_render(runtime, tenant, template, pid) for pid in ids]
    with runtime.sessions() as db:
        prepared = service.renderer(db, workspace_id=ws, template=template, now=NOW)
        profiles = [
            service.resolve_profile(db, workspace_id=ws, profile_id=p, email=None, user_id=None) for p in ids
        ]
        prepared.prefetch(profiles)
        batch = [prepared.render_profile(p).raise_for_errors() for p in profiles]
    assert [m.variants["hero"] for m in batch] == ["pro", "leeds", "default"]
    assert [(m.parts, m.choices) for m in batch] == [(m.parts, m.choices) for m in singly]


def test_template_and_snippet_edits_are_audited(runtime: Runtime, tenant: Tenant) -> None:
    template = _create(runtime, tenant)
    with runtime.sessions() as db:
        service.update_template(
            db,
            workspace_id=tenant.workspace_id,
            template_id=template.id,
            data=TemplateUpdate(content={**EMAIL, "subject": "Changed"}),
            actor="user:7",
            now=NOW,
        )
        service.archive_template(
            db, workspace_id=tenant.workspace_id, template_id=template.id, actor="user:7", now=NOW
        )
        service.create_snippet(
            db,
            workspace_id=tenant.workspace_id,
            data=SnippetCreate(name="s", source="x"),
            actor="user:7",
            now=NOW,
        )
        db.commit()
        rows = db.execute(
            select(AuditEntry.action, AuditEntry.actor, AuditEntry.target_id, AuditEntry.details)
            .where(
                AuditEntry.workspace_id == tenant.workspace_id,
                AuditEntry.target_type.in_(["template", "snippet"]),
            )
            .order_by(AuditEntry.id)
        ).all()
    assert [(r.action, r.actor) for r in rows] == [
        ("template.created", "test"),
        ("template.updated", "user:7"),
        ("template.archived", "user:7"),
        ("snippet.created", "user:7"),
    ]
    assert rows[1].target_id == str(template.id) and rows[1].details == {"changed": ["content"], "version": 2}


def test_the_text_part_is_made_from_the_html_when_not_written(runtime: Runtime, tenant: Tenant) -> None:
    pid = add_profile(runtime, tenant.workspace_id, traits={"email": "a@x.io", "first_name": "Ada"})
    html = '<body><h1>Hi {{ first_name }}</h1><p>See <a href="https://x.io/s">our shop</a></p></body>'
    plain = TemplateDraft(channel="email", content={"subject": "s", "html": html, "text": ""}, blocks=[])
    written = TemplateDraft(
        channel="email", content={"subject": "s", "html": html, "text": "Mine"}, blocks=[]
    )
    with runtime.sessions() as db:
        made = service.render_template(
            db, workspace_id=tenant.workspace_id, template=plain, profile_id=pid, now=NOW
        )
        kept = service.render_template(
            db, workspace_id=tenant.workspace_id, template=written, profile_id=pid, now=NOW
        )
    assert made.text_generated and made.parts["text"] == "Hi Ada\n======\n\nSee our shop (https://x.io/s)\n"
    assert not kept.text_generated and kept.parts["text"] == "Mine"
