"""Templates and snippets as a service: validate and save, version, archive, duplicate; render and preview.

Services flush, the edge commits. The campaign engine calls :func:`render_template` (one recipient) or
prepares a :func:`renderer` once per template and calls ``render_profile`` per recipient; outbox rows made
from a template carry :func:`message_content` and are rendered at send time by :func:`render_outbox_content`
(docs/templates.md, "Sending a template").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.audit import service as audit_service
from rapport.channels.base import EmailPayload
from rapport.channels.gsm import count_segments
from rapport.channels.mime import MimeError, build_email
from rapport.content import repository
from rapport.content.parts import clean_content, spec_of
from rapport.content.rendering import (
    MAX_SNIPPETS,
    RenderedMessage,
    RenderOutcome,
    TemplateDraft,
    TemplateRenderer,
    default_engine,
)
from rapport.content.schemas import (
    BlockChoice,
    BlockIn,
    PartError,
    PreviewBody,
    PreviewItem,
    PreviewRead,
    SmsInfo,
    SnippetCreate,
    SnippetUpdate,
    TemplateCreate,
    TemplateUpdate,
)
from rapport.content.validation import (
    ContentIssue,
    ContentReport,
    snippet_names_used,
    validate_content,
    validate_snippet,
)
from rapport.errors import Conflict, NotFound, ValidationFailed
from rapport.kit.pagination import Page
from rapport.models import MessageTemplate, Profile, Snippet
from rapport.personalize import RenderFailed, TemplateEngine
from rapport.personalize.context import TRIGGER_VARIABLES
from rapport.profiles import service as profiles_service
from rapport.segments import catalog_service
from rapport.segments import service as segments_service
from rapport.segments.catalog import Catalog

PREVIEW_FROM = "preview@example.com"
#: Keys of a queued message's content that feed its render (written when it was queued: campaigns/).
OUTBOX_CONTEXT = ("event", "campaign", *TRIGGER_VARIABLES, "recommendations")
#: Placeholder links shown in previews (real ones are signed per recipient at send time).
PREVIEW_LINKS = {
    "unsubscribe": "https://example.com/u/preview",
    "preferences": "https://example.com/p/preview",
    "view_online": "https://example.com/v/preview",
}


# ---- templates --------------------------------------------------------------------------------------------


def get_template(db: Session, *, workspace_id: int, template_id: int) -> MessageTemplate:
    """Return one template of the workspace or raise NotFound."""
    template = repository.get_template(db, workspace_id=workspace_id, template_id=template_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    return template


def list_templates(
    db: Session,
    *,
    workspace_id: int,
    page: Page,
    channel: str | None = None,
    include_archived: bool = False,
    q: str | None = None,
) -> Sequence[MessageTemplate]:
    """Return a page of templates, most recently changed first."""
    if channel:
        spec_of(channel)
    return repository.list_templates(
        db,
        workspace_id=workspace_id,
        channel=channel,
        include_archived=include_archived,
        q=q.strip() if q else None,
        limit=page.limit,
        offset=page.offset,
    )


def _snippets(db: Session, workspace_id: int) -> dict[str, str]:
    return repository.snippet_sources(db, workspace_id=workspace_id, limit=MAX_SNIPPETS)


def _catalog(db: Session, workspace_id: int) -> Catalog:
    return catalog_service.build_catalog(db, workspace_id=workspace_id)


def _blocks(blocks: Sequence[BlockIn]) -> list[dict[str, Any]]:
    return [block.model_dump() for block in blocks]


def check_template(
    db: Session,
    *,
    workspace_id: int,
    channel: str,
    content: Mapping[str, str | None],
    blocks: Sequence[BlockIn] | Sequence[Mapping[str, Any]],
    engine: TemplateEngine | None = None,
) -> ContentReport:
    """Validate a template's content and blocks without saving (the editor's and the API's check)."""
    cleaned = clean_content(channel, content)
    raw = [b.model_dump() if isinstance(b, BlockIn) else dict(b) for b in blocks]
    return validate_content(
        engine or default_engine(),
        channel=channel,
        content=cleaned,
        blocks=raw,
        snippets=_snippets(db, workspace_id),
        catalog=_catalog(db, workspace_id),
    )


def issues_details(report: ContentReport) -> dict[str, Any]:
    """Return a report as the ``details`` of an error answer: errors and warnings with their positions."""

    def shape(issue: Any) -> dict[str, Any]:
        return {
            "part": issue.part,
            "severity": issue.severity,
            "code": issue.code,
            "message": issue.message,
            "line": issue.line,
            "column": issue.column,
            "suggestion": issue.suggestion,
        }

    return {"errors": [shape(i) for i in report.errors], "warnings": [shape(i) for i in report.warnings]}


def _refuse(report: ContentReport, what: str) -> None:
    if report.errors:
        first = report.errors[0]
        where = f"{first.part}"
        if first.line is not None:
            where += f", line {first.line}, column {first.column}"
        raise ValidationFailed(
            f"the {what} has {len(report.errors)} error(s); first: {where}: {first.message}",
            code=f"invalid_{what}",
            details=issues_details(report),
        )


def _name_free(db: Session, *, workspace_id: int, name: str, template_id: int | None = None) -> None:
    existing = repository.template_by_name(db, workspace_id=workspace_id, name=name)
    if existing is not None and existing.id != template_id:
        raise Conflict(f"a template called {name!r} exists", code="template_name_taken")


def create_template(
    db: Session,
    *,
    workspace_id: int,
    data: TemplateCreate,
    actor: str,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> tuple[MessageTemplate, ContentReport]:
    """Validate and save a new template (version 1); errors refuse it, warnings come back with it."""
    name = data.name.strip()
    _name_free(db, workspace_id=workspace_id, name=name)
    content = clean_content(data.channel, data.content)
    report = check_template(
        db,
        workspace_id=workspace_id,
        channel=data.channel,
        content=content,
        blocks=data.blocks,
        engine=engine,
    )
    _refuse(report, "template")
    template = MessageTemplate(
        workspace_id=workspace_id,
        name=name,
        channel=data.channel,
        description=data.description,
        content=content,
        blocks=_blocks(data.blocks),
        version=1,
        created_by=actor[:100],
        created_at=now,
        updated_at=now,
    )
    db.add(template)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="template.created",
        target_type="template",
        target_id=template.id,
        details={"name": name, "channel": data.channel},
    )
    return template, report


def update_template(
    db: Session,
    *,
    workspace_id: int,
    template_id: int,
    data: TemplateUpdate,
    actor: str,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> tuple[MessageTemplate, ContentReport]:
    """Rename, redescribe or change a template; new content or blocks bump the version."""
    template = get_template(db, workspace_id=workspace_id, template_id=template_id)
    if template.archived_at is not None:
        raise Conflict("an archived template cannot change", code="template_archived")
    if data.expected_version is not None and data.expected_version != template.version:
        raise Conflict(
            f"the template changed meanwhile (version {template.version}, you edited {data.expected_version})",
            code="template_version_conflict",
        )
    changed: list[str] = []
    if data.name is not None and data.name.strip() != template.name:
        _name_free(db, workspace_id=workspace_id, name=data.name.strip(), template_id=template.id)
        template.name = data.name.strip()
        changed.append("name")
    if data.description is not None and data.description != template.description:
        template.description = data.description
        changed.append("description")
    report = ContentReport((), ())
    if data.content is not None or data.blocks is not None:
        content = clean_content(
            template.channel, data.content if data.content is not None else template.content
        )
        blocks = _blocks(data.blocks) if data.blocks is not None else list(template.blocks or [])
        report = check_template(
            db,
            workspace_id=workspace_id,
            channel=template.channel,
            content=content,
            blocks=blocks,
            engine=engine,
        )
        _refuse(report, "template")
        if content != template.content or blocks != list(template.blocks or []):
            template.content = content
            template.blocks = blocks
            template.version += 1
            changed.append("content")
    if changed:
        template.updated_at = now
        db.flush()
        audit_service.record(
            db,
            workspace_id=workspace_id,
            actor=actor,
            action="template.updated",
            target_type="template",
            target_id=template.id,
            details={"changed": changed, "version": template.version},
        )
    return template, report


def archive_template(
    db: Session, *, workspace_id: int, template_id: int, actor: str, now: datetime
) -> MessageTemplate:
    """Archive a template: it keeps its content (sent messages refer to it) but leaves the lists."""
    template = get_template(db, workspace_id=workspace_id, template_id=template_id)
    if template.archived_at is None:
        template.archived_at = now
        template.updated_at = now
        db.flush()
        audit_service.record(
            db,
            workspace_id=workspace_id,
            actor=actor,
            action="template.archived",
            target_type="template",
            target_id=template.id,
        )
    return template


def duplicate_template(
    db: Session, *, workspace_id: int, template_id: int, name: str | None, actor: str, now: datetime
) -> MessageTemplate:
    """Save a copy of a template under a new name (default: "<name> (copy)", numbered when taken)."""
    source = get_template(db, workspace_id=workspace_id, template_id=template_id)
    new_name = (name or "").strip()
    if not new_name:
        new_name = f"{source.name} (copy)"
        n = 2
        while repository.template_by_name(db, workspace_id=workspace_id, name=new_name) is not None:
            new_name = f"{source.name} (copy {n})"
            n += 1
    _name_free(db, workspace_id=workspace_id, name=new_name)
    copy = MessageTemplate(
        workspace_id=workspace_id,
        name=new_name[:200],
        channel=source.channel,
        description=source.description,
        content=dict(source.content or {}),
        blocks=list(source.blocks or []),
        version=1,
        created_by=actor[:100],
        created_at=now,
        updated_at=now,
    )
    db.add(copy)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="template.duplicated",
        target_type="template",
        target_id=copy.id,
        details={"from": source.id},
    )
    return copy


# ---- snippets ---------------------------------------------------------------------------------------------


def get_snippet(db: Session, *, workspace_id: int, snippet_id: int) -> Snippet:
    """Return one snippet of the workspace or raise NotFound."""
    snippet = repository.get_snippet(db, workspace_id=workspace_id, snippet_id=snippet_id)
    if snippet is None:
        raise NotFound(f"no snippet {snippet_id}")
    return snippet


def list_snippets(db: Session, *, workspace_id: int, page: Page) -> Sequence[Snippet]:
    """Return a page of snippets by name."""
    return repository.list_snippets(db, workspace_id=workspace_id, limit=page.limit, offset=page.offset)


def _users_of_snippet(db: Session, *, workspace_id: int, name: str) -> list[str]:
    users: list[str] = []
    for template in repository.active_templates(db, workspace_id=workspace_id):
        sources = [str(v) for v in (template.content or {}).values() if v]
        for block in template.blocks or []:
            sources.append(str(block.get("default") or ""))
            sources.extend(str(v.get("source") or "") for v in block.get("variants") or [])
        if name in snippet_names_used(sources):
            users.append(template.name)
    for other in repository.snippet_sources(db, workspace_id=workspace_id, limit=MAX_SNIPPETS).items():
        if other[0] != name and name in snippet_names_used([other[1]]):
            users.append(f"snippet {other[0]}")
    return sorted(users)


def _check_snippet(
    db: Session, *, workspace_id: int, name: str, source: str, engine: TemplateEngine | None
) -> ContentReport:
    report = validate_snippet(
        engine or default_engine(),
        name=name,
        source=source,
        snippets=_snippets(db, workspace_id),
        catalog=_catalog(db, workspace_id),
    )
    if name in snippet_names_used([source]):
        report = ContentReport(
            (
                *report.errors,
                ContentIssue("source", "error", "snippet_recursion", "a snippet cannot render itself"),
            ),
            report.warnings,
        )
    return report


def create_snippet(
    db: Session,
    *,
    workspace_id: int,
    data: SnippetCreate,
    actor: str,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> tuple[Snippet, ContentReport]:
    """Validate and save a snippet; its name must be free."""
    name = data.name.strip()
    if repository.snippet_by_name(db, workspace_id=workspace_id, name=name) is not None:
        raise Conflict(f"a snippet called {name!r} exists", code="snippet_name_taken")
    report = _check_snippet(db, workspace_id=workspace_id, name=name, source=data.source, engine=engine)
    _refuse(report, "snippet")
    snippet = Snippet(
        workspace_id=workspace_id, name=name, source=data.source, created_at=now, updated_at=now
    )
    db.add(snippet)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="snippet.created",
        target_type="snippet",
        target_id=snippet.id,
    )
    return snippet, report


def update_snippet(
    db: Session,
    *,
    workspace_id: int,
    snippet_id: int,
    data: SnippetUpdate,
    actor: str,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> tuple[Snippet, ContentReport]:
    """Rename or change a snippet; a rename is refused while templates use the old name."""
    snippet = get_snippet(db, workspace_id=workspace_id, snippet_id=snippet_id)
    name = data.name.strip() if data.name is not None else snippet.name
    if name != snippet.name:
        if repository.snippet_by_name(db, workspace_id=workspace_id, name=name) is not None:
            raise Conflict(f"a snippet called {name!r} exists", code="snippet_name_taken")
        users = _users_of_snippet(db, workspace_id=workspace_id, name=snippet.name)
        if users:
            raise Conflict(f"{', '.join(users)} use this snippet; change them first", code="snippet_in_use")
    source = data.source if data.source is not None else snippet.source
    report = _check_snippet(db, workspace_id=workspace_id, name=name, source=source, engine=engine)
    _refuse(report, "snippet")
    snippet.name = name
    snippet.source = source
    snippet.updated_at = now
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="snippet.updated",
        target_type="snippet",
        target_id=snippet.id,
    )
    return snippet, report


def delete_snippet(db: Session, *, workspace_id: int, snippet_id: int, actor: str) -> Snippet:
    """Delete a snippet no template uses (409 otherwise, naming them)."""
    snippet = get_snippet(db, workspace_id=workspace_id, snippet_id=snippet_id)
    users = _users_of_snippet(db, workspace_id=workspace_id, name=snippet.name)
    if users:
        raise Conflict(f"{', '.join(users)} use this snippet", code="snippet_in_use")
    db.delete(snippet)
    db.flush()
    audit_service.record(
        db,
        workspace_id=workspace_id,
        actor=actor,
        action="snippet.deleted",
        target_type="snippet",
        target_id=snippet_id,
        details={"name": snippet.name},
    )
    return snippet


# ---- rendering --------------------------------------------------------------------------------------------


def renderer(
    db: Session,
    *,
    workspace_id: int,
    template: MessageTemplate | TemplateDraft,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> TemplateRenderer:
    """Prepare ``template`` once (snippets, conditions) to render it for many recipients."""
    draft = template if isinstance(template, TemplateDraft) else TemplateDraft.of(template)
    return TemplateRenderer(db, workspace_id=workspace_id, draft=draft, now=now, engine=engine)


def _profile(db: Session, workspace_id: int, profile_id: int) -> Profile:
    return profiles_service.get_profile(db, workspace_id=workspace_id, profile_id=profile_id)


def render_template(
    db: Session,
    *,
    workspace_id: int,
    template: MessageTemplate | TemplateDraft,
    profile_id: int,
    now: datetime,
    extra_context: Mapping[str, Any] | None = None,
    engine: TemplateEngine | None = None,
) -> RenderedMessage:
    """Render ``template`` for one profile: every part in its channel's format and the variant per block.

    ``extra_context`` may hold ``event``, ``campaign``, ``links`` (unsubscribe, preferences, view_online),
    ``store``, ``catalog``, ``recommendations``, ``locale``/``timezone``/``currency`` overrides; other keys
    become top-level variables. Raises ``RenderFailed`` (reason, part, line) when any part fails (R22) and
    NotFound when the profile does not exist.
    """
    prepared = renderer(db, workspace_id=workspace_id, template=template, now=now, engine=engine)
    profile = _profile(db, workspace_id, profile_id)
    return prepared.render_profile(profile, extra_context=extra_context).raise_for_errors()


def message_content(template: MessageTemplate) -> dict[str, Any]:
    """The outbox ``content`` of a message made from ``template``: a reference rendered at send time.

    Merge the message's own keys into it (``campaign``, ``event``, ``data``, ``from_address``, …); the
    Deliverer passes the row's content to :func:`render_outbox_content`.
    """
    return {"template_id": template.id, "template_version": template.version, "channel": template.channel}


def render_outbox_content(
    db: Session,
    *,
    workspace_id: int,
    content: Mapping[str, Any],
    profile_id: int,
    now: datetime,
    links: Mapping[str, str] | None = None,
    engine: TemplateEngine | None = None,
    cache: dict[tuple[int, int], TemplateRenderer] | None = None,
) -> RenderedMessage:
    """Render an outbox row whose content came from :func:`message_content` (its template, current version).

    The row's ``event``, ``campaign``, ``segment``, ``occasion``, ``recommendations`` (computed when queued)
    and ``data`` keys feed the context; ``links`` are the recipient's
    signed links. Pass the same ``cache`` dict for every row of a claimed batch: each template is then
    prepared once per batch. Raises ``RenderFailed`` (archived templates still render: queued messages go
    out) and NotFound when the profile is gone.
    """
    template_id = content.get("template_id")
    if not isinstance(template_id, int):
        raise RenderFailed("template_missing", "the message names no template")
    template = repository.get_template(db, workspace_id=workspace_id, template_id=template_id)
    if template is None:
        raise RenderFailed("template_missing", f"template {template_id} no longer exists")
    extra: dict[str, Any] = {key: content[key] for key in OUTBOX_CONTEXT if content.get(key) is not None}
    extra["data"] = content.get("data") or {}
    if links:
        extra["links"] = dict(links)
    key = (template.id, template.version)
    prepared = cache.get(key) if cache is not None else None
    if prepared is None or prepared.db is not db:
        prepared = renderer(db, workspace_id=workspace_id, template=template, now=now, engine=engine)
        if cache is not None:
            cache[key] = prepared
    profile = _profile(db, workspace_id, profile_id)
    return prepared.render_profile(profile, extra_context=extra, now=now).raise_for_errors()


# ---- preview ----------------------------------------------------------------------------------------------


def resolve_profile(
    db: Session, *, workspace_id: int, profile_id: int | None, email: str | None, user_id: str | None
) -> Profile:
    """Return the profile chosen by id, email or user id (NotFound when none matches)."""
    if profile_id is not None:
        return _profile(db, workspace_id, profile_id)
    if email:
        found = profiles_service.find_profile_id(db, workspace_id=workspace_id, kind="email", value=email)
        return _profile(db, workspace_id, found)
    if user_id:
        found = profiles_service.find_profile_id(db, workspace_id=workspace_id, kind="user_id", value=user_id)
        return _profile(db, workspace_id, found)
    raise ValidationFailed(
        "choose whom to preview as: profile_id, email, user_id or segment_id", code="no_recipient"
    )


def sample_profiles(db: Session, *, workspace_id: int, segment_id: int, size: int) -> list[Profile]:
    """Return up to ``size`` random live members of a segment."""
    segments_service.get_segment(db, workspace_id=workspace_id, segment_id=segment_id)
    profiles: list[Profile] = []
    for pid in repository.random_members(db, segment_id=segment_id, limit=size):
        profile = repository.live_profile(db, workspace_id=workspace_id, profile_id=pid)
        if profile is not None:
            profiles.append(profile)
    return profiles


def label_of(profile: Profile) -> str:
    """Return how the preview names a profile."""
    return profile.name or profile.email or profile.phone or f"profile {profile.id}"


def preview_item(
    outcome: RenderOutcome, profile: Profile, *, from_address: str = PREVIEW_FROM
) -> PreviewItem:
    """Shape one render for the preview: parts, errors, SMS segments, MIME size, webhook JSON."""
    message = outcome.message
    parts = dict(message.parts)
    item = PreviewItem(
        profile_id=profile.id,
        label=label_of(profile),
        ok=not outcome.failures,
        parts=parts,
        text_generated=message.text_generated,
        choices=[BlockChoice(block=c.block, variant=c.variant, index=c.index) for c in message.choices],
        errors=[
            PartError(part=f.part, reason=f.reason, message=f.message, line=f.line, column=f.column)
            for f in outcome.failures
        ],
        elapsed_ms=round(message.elapsed_ms, 1),
    )
    if message.channel == "sms":
        count = count_segments(parts.get("body", ""))
        item.sms = SmsInfo(
            encoding=count.encoding,
            units=count.units,
            segments=count.segments,
            per_segment=count.per_segment,
            remaining=count.remaining,
        )
    if message.channel == "email" and (parts.get("html") or parts.get("text")):
        item.mime_bytes = mime_size(message, from_address=from_address)
    if (
        message.channel == "webhook"
        and "body" in parts
        and not any(f.part == "body" for f in outcome.failures)
    ):
        item.webhook_json = json.loads(parts["body"])
    return item


def mime_size(message: RenderedMessage, *, from_address: str = PREVIEW_FROM) -> int | None:
    """Return the size in bytes of the email as it would be sent (None when it cannot be built)."""
    parts = message.parts
    try:
        built = build_email(
            EmailPayload(
                subject=parts.get("subject", ""),
                from_address=from_address,
                text=parts.get("text") or None,
                html=parts.get("html") or None,
                unsubscribe_url=PREVIEW_LINKS["unsubscribe"],
            ),
            to=message.address or "someone@example.com",
            message_id=f"preview-{message.profile_id}",
        )
    except MimeError:
        return None
    return len(built)


def preview(
    db: Session,
    *,
    workspace_id: int,
    draft: TemplateDraft,
    body: PreviewBody,
    now: datetime,
    engine: TemplateEngine | None = None,
) -> PreviewRead:
    """Render ``draft`` as one chosen profile, or as a random sample of a segment's members."""
    if body.segment_id is not None:
        profiles = sample_profiles(
            db, workspace_id=workspace_id, segment_id=body.segment_id, size=body.sample
        )
    else:
        profiles = [
            resolve_profile(
                db,
                workspace_id=workspace_id,
                profile_id=body.profile_id,
                email=body.email,
                user_id=body.user_id,
            )
        ]
    prepared = renderer(db, workspace_id=workspace_id, template=draft, now=now, engine=engine)
    prepared.prefetch(profiles)
    extra = {"links": dict(PREVIEW_LINKS), **body.extra_context}
    items = [preview_item(prepared.render_profile(p, extra_context=extra), p) for p in profiles]
    return PreviewRead(template_id=draft.id, channel=draft.channel, items=items)


def draft_of(
    template: MessageTemplate | None,
    *,
    channel: str | None = None,
    content: Mapping[str, str | None] | None = None,
    blocks: Sequence[BlockIn] | None = None,
) -> TemplateDraft:
    """Return what a preview renders: the saved template, with unsaved ``content``/``blocks`` over it."""
    if template is None and channel is None:
        raise ValidationFailed("a preview needs a template or a channel")
    chosen = template.channel if template is not None else str(channel)
    saved_content = dict(template.content or {}) if template is not None else {}
    saved_blocks = list(template.blocks or []) if template is not None else []
    return TemplateDraft(
        channel=chosen,
        content=clean_content(chosen, content)
        if content is not None
        else clean_content(chosen, saved_content),
        blocks=_blocks(blocks) if blocks is not None else saved_blocks,
        id=template.id if template is not None else None,
        version=template.version if template is not None else None,
    )
