"""Templates pages: the list, the editor per channel with its parts and rule blocks, a live preview as a
chosen customer (or 5 random members of a segment), validation shown next to each field, save / duplicate /
archive. Viewers see everything read-only.

The editor is one form; htmx posts it (debounced) to ``POST /templates/{id}/preview``, which answers the
preview panel plus, out of band, the issues of every field. Rule blocks and their variants are added and
removed with small fragments (``GET /templates/editor/block``, ``/variant``, ``/removed``); their fields are
named by opaque keys (``block_<key>_name``, ``variant_<key>_<vkey>_condition``) so their order is the DOM's.
The HTML part is shown in a sandboxed ``<iframe srcdoc>``; the editor page allows inline styles (emails
need them) — scripts stay forbidden, and the iframe's sandbox runs none.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from rapport.api.deps import DbSession, ReadDbSession
from rapport.content import repository as content_repository
from rapport.content import service as content_service
from rapport.content.parts import CHANNELS, spec_of
from rapport.content.schemas import (
    BlockIn,
    PreviewBody,
    PreviewItem,
    TemplateCreate,
    TemplateUpdate,
    VariantIn,
)
from rapport.content.validation import ContentIssue, ContentReport
from rapport.errors import NotFound, RapportError, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import MessageTemplate
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.web.rendering import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, Flash, redirect, render
from rapport.web.session import UiEditorPost, UiPage, UiPost, UiRoute, UiUser

router = APIRouter(prefix="/templates", route_class=UiRoute, include_in_schema=False)

#: The editor page lets emails keep their inline styles in the preview iframe (nothing else changes).
EDITOR_CSP = CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
CUSTOMERS_SHOWN = 50
#: Fired (HX-Trigger) when blocks or variants are added or removed: the preview refreshes.
CHANGED_EVENT = "tpl-changed"
STARTERS: Mapping[str, dict[str, str]] = {
    "email": {
        "subject": "Hello {{ first_name | default: 'there' }}",
        "preheader": "",
        "html": "<html><body>\n<h1>Hello {{ first_name | default: 'there' }}</h1>\n<p>…</p>\n</body></html>",
        "text": "",
    },
    "sms": {"body": "Hi {{ first_name | default: 'there' }}, …"},
    "push": {"title": "Hi {{ first_name | default: 'there' }}", "body": "", "url": "", "icon": ""},
    "inapp": {"title": "Hi {{ first_name | default: 'there' }}", "body": "", "url": "", "image": ""},
    "webhook": {"url": "https://example.com/hook", "body": '{"profile_id": {{ profile.id }}}'},
}
PART_LABELS = {
    "subject": "Subject",
    "preheader": "Preheader",
    "html": "HTML",
    "text": "Plain text (made from the HTML when empty)",
    "body": "Body",
    "title": "Title",
    "url": "Link URL",
    "icon": "Icon URL",
    "image": "Image URL",
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _key() -> str:
    return secrets.token_hex(4)


# ---- the list ---------------------------------------------------------------------------------------------


@router.get("")
def templates_list(
    request: Request, ui: UiPage, db: ReadDbSession, channel: str = "", archived: bool = False
) -> Response:
    """List the workspace's templates (filter by channel, archived ones on demand) and the snippets."""
    chosen = channel if channel in CHANNELS else ""
    templates = content_service.list_templates(
        db,
        workspace_id=ui.workspace_id,
        page=Page(limit=500),
        channel=chosen or None,
        include_archived=archived,
    )
    snippets = content_service.list_snippets(db, workspace_id=ui.workspace_id, page=Page(limit=200))
    return render(
        request,
        "content/list.html",
        {
            "title": "Templates",
            "templates": templates,
            "snippets": snippets,
            "channels": list(CHANNELS),
            "channel": chosen,
            "archived": archived,
        },
    )


@router.post("/new")
def template_create(
    request: Request,
    ui: UiEditorPost,
    db: DbSession,
    name: Annotated[str, Form(max_length=200)] = "",
    channel: Annotated[str, Form()] = "email",
) -> Response:
    """Create a template with a starter content for its channel and open it in the editor."""
    if not name.strip() or channel not in CHANNELS:
        return redirect(
            request, "/templates", flash=Flash("error", "Give the template a name and a channel.")
        )
    try:
        template, _report = content_service.create_template(
            db,
            workspace_id=ui.workspace_id,
            data=TemplateCreate(name=name, channel=channel, content=dict(STARTERS[channel])),
            actor=f"user:{ui.user_id}",
            now=_runtime(request).clock.now(),
        )
    except RapportError as exc:
        if exc.status_code >= 500:
            raise
        return redirect(request, "/templates", flash=Flash("error", exc.message))
    db.commit()
    return redirect(request, f"/templates/{template.id}", flash=Flash("success", f"Created {template.name}."))


# ---- the editor -------------------------------------------------------------------------------------------


def _editor_blocks(blocks: list[Any]) -> list[dict[str, Any]]:
    """Give every block and variant a form key."""
    shaped = []
    for block in blocks:
        variants = [{**variant, "key": _key()} for variant in block.get("variants") or []]
        shaped.append({**block, "key": _key(), "variants": variants})
    return shaped


def _field_ids(content: Mapping[str, Any], blocks: list[dict[str, Any]], channel: str) -> dict[str, str]:
    """Map each issue part (``html``, ``blocks.hero.variants.1.condition``) to its form field's name."""
    fields = {part: f"part_{part}" for part in spec_of(channel).parts}
    for block in blocks:
        name, key = block.get("name") or "", block["key"]
        fields[f"blocks.{name}"] = f"block_{key}_name"
        fields[f"blocks.{name}.default"] = f"block_{key}_default"
        for n, variant in enumerate(block["variants"], start=1):
            fields[f"blocks.{name}.variants.{n}"] = f"variant_{key}_{variant['key']}_source"
            fields[f"blocks.{name}.variants.{n}.condition"] = f"variant_{key}_{variant['key']}_condition"
    return fields


def _issues_by_field(report: ContentReport, fields: Mapping[str, str]) -> dict[str, list[ContentIssue]]:
    found: dict[str, list[ContentIssue]] = {field: [] for field in fields.values()}
    for issue in (*report.errors, *report.warnings):
        field = fields.get(issue.part) or fields.get(issue.part.rsplit(".", 1)[0]) or "part_general"
        found.setdefault(field, []).append(issue)
    return found


def _chooser(db: Session, ui: UiUser) -> dict[str, Any]:
    profiles = content_repository.find_profiles(db, workspace_id=ui.workspace_id, q="", limit=CUSTOMERS_SHOWN)
    segments = segments_service.list_segments(db, workspace_id=ui.workspace_id)
    return {
        "customers": [(p.id, content_service.label_of(p), p.email or p.phone or "") for p in profiles],
        "segments": [(s.id, s.name, s.member_count) for s in segments],
    }


def _editor(
    request: Request,
    ui: UiUser,
    db: Session,
    template: MessageTemplate,
    *,
    content: Mapping[str, Any] | None = None,
    blocks: list[dict[str, Any]] | None = None,
    report: ContentReport | None = None,
    name: str | None = None,
    status_code: int = 200,
    problem: str = "",
) -> HTMLResponse:
    shown_blocks = blocks if blocks is not None else _editor_blocks(list(template.blocks or []))
    shown_content = dict(content if content is not None else template.content or {})
    fields = _field_ids(shown_content, shown_blocks, template.channel)
    issues = _issues_by_field(report or ContentReport((), ()), fields)
    spec = spec_of(template.channel)
    response = render(
        request,
        "content/editor.html",
        {
            "title": template.name,
            "template": template,
            "name": name if name is not None else template.name,
            "spec": spec,
            "labels": PART_LABELS,
            "content": shown_content,
            "blocks": shown_blocks,
            "issues": issues,
            "problem": problem,
            "read_only": not ui.can_edit or template.archived_at is not None,
            "snippets": content_service.list_snippets(db, workspace_id=ui.workspace_id, page=Page(limit=200)),
            **_chooser(db, ui),
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = EDITOR_CSP
    return response


def _template(db: Session, ui: UiUser, template_id: int) -> MessageTemplate:
    return content_service.get_template(db, workspace_id=ui.workspace_id, template_id=template_id)


@router.get("/editor/block")
def editor_block(request: Request, ui: UiPage) -> Response:
    """A new, empty rule block for the editor (with one variant)."""
    block = {
        "key": _key(),
        "name": "",
        "default": "",
        "variants": [{"key": _key(), "condition": "", "source": ""}],
    }
    response = render(request, "content/_block.html", {"block": block, "issues": {}, "read_only": False})
    response.headers["HX-Trigger"] = CHANGED_EVENT
    return response


@router.get("/editor/variant")
def editor_variant(request: Request, ui: UiPage, block: str = "") -> Response:
    """A new, empty variant of the block ``block`` (its form key)."""
    if block and not block.isalnum():
        raise NotFound("no such block")
    block = block or _key()
    variant = {"key": _key(), "condition": "", "source": "", "name": ""}
    response = render(
        request,
        "content/_variant.html",
        {"block": {"key": block}, "variant": variant, "issues": {}, "read_only": False},
    )
    response.headers["HX-Trigger"] = CHANGED_EVENT
    return response


@router.get("/editor/removed")
def editor_removed(request: Request, ui: UiPage) -> Response:
    """Nothing: what a removed block or variant is swapped for."""
    return HTMLResponse("", headers={**SECURITY_HEADERS, "HX-Trigger": CHANGED_EVENT})


@router.get("/{template_id}")
def template_editor(request: Request, template_id: int, ui: UiPage, db: ReadDbSession) -> Response:
    """Open a template in the editor."""
    return _editor(request, ui, db, _template(db, ui, template_id))


def _form_content(form: FormData, channel: str) -> dict[str, str] | None:
    parts = spec_of(channel).parts
    if not any(f"part_{part}" in form for part in parts):
        return None  # a read-only editor sends no parts: use what is saved
    return {part: str(form.get(f"part_{part}") or "") for part in parts}


def _form_blocks(form: FormData) -> tuple[list[dict[str, Any]], list[BlockIn], str]:
    """Return the blocks as the editor shows them (with keys), the valid ones as the service takes them,
    and what is wrong with the others ("" when nothing)."""
    shown: list[dict[str, Any]] = []
    parsed: list[BlockIn] = []
    problems: list[str] = []
    for key in dict.fromkeys(str(k) for k in form.getlist("block_key")):
        name = str(form.get(f"block_{key}_name") or "").strip()
        default = str(form.get(f"block_{key}_default") or "")
        variants: list[dict[str, Any]] = []
        for vkey in dict.fromkeys(str(v) for v in form.getlist(f"variant_{key}")):
            prefix = f"variant_{key}_{vkey}"
            variants.append(
                {
                    "key": vkey,
                    "condition": str(form.get(f"{prefix}_condition") or ""),
                    "source": str(form.get(f"{prefix}_source") or ""),
                    "name": str(form.get(f"{prefix}_name") or "").strip(),
                }
            )
        shown.append({"key": key, "name": name, "default": default, "variants": variants})
        try:
            parsed.append(
                BlockIn(
                    name=name,
                    default=default,
                    variants=[
                        VariantIn(condition=v["condition"] or " ", source=v["source"], name=v["name"][:40])
                        for v in variants
                    ],
                )
            )
        except ValueError:
            problems.append(
                f"Block {name or '(unnamed)'}: give it a name of letters, digits and _ (a letter first)."
            )
    return shown, parsed, " ".join(problems)


@router.post("/{template_id}")
async def template_save(request: Request, template_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Save the editor: errors come back next to their fields, a good save bumps the version.

    A refused save shows the editor again (200, like the segment builder) with the edits kept.
    """
    template = _template(db, ui, template_id)
    form = await request.form()
    content = _form_content(form, template.channel) or dict(template.content or {})
    sent_name = form.get("name")
    name = template.name if sent_name is None else str(sent_name).strip()
    expected = str(form.get("expected_version") or "").strip()
    shown_blocks, blocks, problem = _form_blocks(form)
    if not name:
        problem = "Give the template a name: the old one is kept until you do."
    elif expected and not expected.isdigit():  # the editor always sends the version it was opened at
        problem = "The editor's version field is not a number: reload the page, your edits are shown below."
    if problem:
        return _editor(
            request, ui, db, template, content=content, blocks=shown_blocks, name=name, problem=problem
        )
    try:
        saved, _report = content_service.update_template(
            db,
            workspace_id=ui.workspace_id,
            template_id=template.id,
            data=TemplateUpdate(
                name=name,
                description=str(form.get("description") or ""),
                content=dict(content),
                blocks=blocks,
                expected_version=int(expected) if expected.isdigit() else None,
            ),
            actor=f"user:{ui.user_id}",
            now=_runtime(request).clock.now(),
        )
    except ValidationFailed as exc:
        db.rollback()
        template = _template(db, ui, template_id)
        report = _report_of(exc)
        return _editor(
            request,
            ui,
            db,
            template,
            content=content,
            blocks=shown_blocks,
            report=report,
            name=name,
            status_code=200,
            problem="Not saved: fix the errors marked below." if report.errors else exc.message,
        )
    except RapportError as exc:
        if exc.status_code >= 500:
            raise
        db.rollback()
        template = _template(db, ui, template_id)
        return _editor(
            request,
            ui,
            db,
            template,
            content=content,
            blocks=shown_blocks,
            name=name,
            status_code=200,
            problem=exc.message,
        )
    db.commit()
    return redirect(
        request, f"/templates/{saved.id}", flash=Flash("success", f"Saved version {saved.version}.")
    )


def _report_of(exc: ValidationFailed) -> ContentReport:
    details = exc.details if isinstance(exc.details, dict) else {}

    def issues(kind: str) -> tuple[ContentIssue, ...]:
        return tuple(ContentIssue(**issue) for issue in details.get(kind) or [])

    return ContentReport(issues("errors"), issues("warnings"))


@router.post("/{template_id}/preview")
async def template_preview(request: Request, template_id: int, ui: UiPost, db: ReadDbSession) -> Response:
    """Render the editor's current content as the chosen customer(s); issues go next to their fields."""
    template = _template(db, ui, template_id)
    form = await request.form()
    content = _form_content(form, template.channel)
    shown_blocks, blocks, problem = _form_blocks(form)
    use_blocks = blocks if content is not None else None
    draft = content_service.draft_of(template, content=content, blocks=use_blocks)
    if content is None:
        shown_blocks = _editor_blocks(list(template.blocks or []))
    report = content_service.check_template(
        db, workspace_id=ui.workspace_id, channel=template.channel, content=draft.content, blocks=draft.blocks
    )
    fields = _field_ids(draft.content, shown_blocks, template.channel)
    items: list[PreviewItem] = []
    body = _preview_body(form)
    if body is None:
        problem = problem or "Choose a customer or a segment to preview as."
    else:  # a template with errors still previews the parts that render
        try:
            items = content_service.preview(
                db, workspace_id=ui.workspace_id, draft=draft, body=body, now=_runtime(request).clock.now()
            ).items
        except RapportError as exc:
            if exc.status_code >= 500:
                raise
            problem = exc.message
    response = render(
        request,
        "content/_preview.html",
        {
            "template": template,
            "items": items,
            "report": report,
            "issues": _issues_by_field(report, fields),
            "problem": problem,
            "channel": template.channel,
            "read_only": content is None,
        },
    )
    response.headers["Content-Security-Policy"] = EDITOR_CSP
    return response


def _preview_body(form: FormData) -> PreviewBody | None:
    lookup = str(form.get("preview_lookup") or "").strip()
    segment = str(form.get("preview_segment") or "")
    customer = str(form.get("preview_profile") or "")
    if form.get("preview_as") == "segment" and segment.isdigit():
        return PreviewBody(segment_id=int(segment), sample=5)
    if lookup:
        if lookup.isdigit():
            return PreviewBody(profile_id=int(lookup))
        if "@" in lookup:
            return PreviewBody(email=lookup)
        return PreviewBody(user_id=lookup)
    if customer.isdigit():
        return PreviewBody(profile_id=int(customer))
    return None


@router.post("/{template_id}/duplicate")
def template_duplicate(request: Request, template_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Save a copy and open it."""
    copy = content_service.duplicate_template(
        db,
        workspace_id=ui.workspace_id,
        template_id=template_id,
        name=None,
        actor=f"user:{ui.user_id}",
        now=_runtime(request).clock.now(),
    )
    db.commit()
    return redirect(request, f"/templates/{copy.id}", flash=Flash("success", f"Copied as {copy.name}."))


@router.post("/{template_id}/archive")
def template_archive(request: Request, template_id: int, ui: UiEditorPost, db: DbSession) -> Response:
    """Archive a template."""
    template = content_service.archive_template(
        db,
        workspace_id=ui.workspace_id,
        template_id=template_id,
        actor=f"user:{ui.user_id}",
        now=_runtime(request).clock.now(),
    )
    db.commit()
    return redirect(request, "/templates", flash=Flash("success", f"Archived {template.name}."))
