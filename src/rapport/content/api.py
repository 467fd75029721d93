"""HTTP routes under /api/v1/templates and /api/v1/snippets: CRUD, validation, preview.

Reading needs ``campaigns:read``, changing ``campaigns:write``; a preview shows a person's data, so it
also needs ``profiles:read``. An invalid template answers 400 ``invalid_template`` with
``details = {errors: [...], warnings: [...]}``, each issue with its part, line and column.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from rapport.accounts.principal import Principal
from rapport.api.deps import DbSession, Offset, ReadDbSession, get_runtime, require_scope
from rapport.content import service
from rapport.content.schemas import (
    DuplicateBody,
    Issue,
    PreviewBody,
    PreviewRead,
    SnippetCreate,
    SnippetRead,
    SnippetSaved,
    SnippetUpdate,
    TemplateCreate,
    TemplateRead,
    TemplateSaved,
    TemplateUpdate,
    ValidateBody,
    ValidationRead,
)
from rapport.content.validation import ContentReport
from rapport.errors import Forbidden
from rapport.kit.pagination import Page
from rapport.models import MessageTemplate, Snippet
from rapport.runtime import Runtime

router = APIRouter(tags=["templates"])

Reader = Annotated[Principal, Depends(require_scope("campaigns:read"))]
Writer = Annotated[Principal, Depends(require_scope("campaigns:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Limit = Annotated[int, Query(ge=1, le=1000)]


def _issues(report: ContentReport) -> tuple[list[Issue], list[Issue]]:
    details = service.issues_details(report)
    return [Issue(**i) for i in details["errors"]], [Issue(**i) for i in details["warnings"]]


def _saved(template: MessageTemplate, report: ContentReport) -> TemplateSaved:
    read = TemplateRead.model_validate(template)
    return TemplateSaved(**read.model_dump(), warnings=_issues(report)[1])


def _snippet_saved(snippet: Snippet, report: ContentReport) -> SnippetSaved:
    read = SnippetRead.model_validate(snippet)
    return SnippetSaved(**read.model_dump(), warnings=_issues(report)[1])


@router.get("/api/v1/templates", response_model=list[TemplateRead])
def list_templates(
    principal: Reader,
    db: ReadDbSession,
    channel: str | None = None,
    include_archived: bool = False,
    q: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> object:
    """List templates, most recently changed first (filter by channel or a name fragment)."""
    return service.list_templates(
        db,
        workspace_id=principal.workspace_id,
        page=Page(limit=limit, offset=offset),
        channel=channel,
        include_archived=include_archived,
        q=q,
    )


@router.post("/api/v1/templates", response_model=TemplateSaved, status_code=201)
def create_template(body: TemplateCreate, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Save a template; 400 with every error's part/line/column when it is invalid; warnings come back."""
    template, report = service.create_template(
        db, workspace_id=principal.workspace_id, data=body, actor=principal.actor, now=runtime.clock.now()
    )
    db.commit()
    return _saved(template, report)


@router.post("/api/v1/templates/validate", response_model=ValidationRead)
def validate_template(body: ValidateBody, principal: Reader, db: ReadDbSession) -> object:
    """Check a template without saving it: errors and warnings with their positions."""
    report = service.check_template(
        db,
        workspace_id=principal.workspace_id,
        channel=body.channel,
        content=body.content,
        blocks=body.blocks,
    )
    errors, warnings = _issues(report)
    return ValidationRead(ok=report.ok, errors=errors, warnings=warnings)


@router.get("/api/v1/templates/{template_id}", response_model=TemplateRead)
def read_template(template_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one template."""
    return service.get_template(db, workspace_id=principal.workspace_id, template_id=template_id)


@router.patch("/api/v1/templates/{template_id}", response_model=TemplateSaved)
def update_template(
    template_id: int, body: TemplateUpdate, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Change a template; new content bumps the version (409 when ``expected_version`` is stale)."""
    template, report = service.update_template(
        db,
        workspace_id=principal.workspace_id,
        template_id=template_id,
        data=body,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return _saved(template, report)


@router.delete("/api/v1/templates/{template_id}", response_model=TemplateRead)
def archive_template(template_id: int, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Archive a template."""
    template = service.archive_template(
        db,
        workspace_id=principal.workspace_id,
        template_id=template_id,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return template


@router.post("/api/v1/templates/{template_id}/duplicate", response_model=TemplateRead, status_code=201)
def duplicate_template(
    template_id: int, body: DuplicateBody, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Save a copy of a template under a new name."""
    template = service.duplicate_template(
        db,
        workspace_id=principal.workspace_id,
        template_id=template_id,
        name=body.name,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return template


@router.post("/api/v1/templates/{template_id}/preview", response_model=PreviewRead)
def preview_template(
    template_id: int, body: PreviewBody, principal: Reader, db: ReadDbSession, runtime: RuntimeDep
) -> object:
    """Render the template (or unsaved ``content``/``blocks``) as a profile or 1-20 random segment members."""
    if not principal.can("profiles:read"):
        raise Forbidden(
            "a preview shows profile data: this key or role lacks 'profiles:read'", code="missing_scope"
        )
    template = service.get_template(db, workspace_id=principal.workspace_id, template_id=template_id)
    draft = service.draft_of(template, content=body.content, blocks=body.blocks)
    return service.preview(
        db, workspace_id=principal.workspace_id, draft=draft, body=body, now=runtime.clock.now()
    )


@router.get("/api/v1/snippets", response_model=list[SnippetRead])
def list_snippets(principal: Reader, db: ReadDbSession, limit: Limit = 100, offset: Offset = 0) -> object:
    """List snippets by name."""
    return service.list_snippets(
        db, workspace_id=principal.workspace_id, page=Page(limit=limit, offset=offset)
    )


@router.post("/api/v1/snippets", response_model=SnippetSaved, status_code=201)
def create_snippet(body: SnippetCreate, principal: Writer, db: DbSession, runtime: RuntimeDep) -> object:
    """Save a snippet (templates use it as ``{% render "name" %}``); 400 with positions when invalid."""
    snippet, report = service.create_snippet(
        db, workspace_id=principal.workspace_id, data=body, actor=principal.actor, now=runtime.clock.now()
    )
    db.commit()
    return _snippet_saved(snippet, report)


@router.get("/api/v1/snippets/{snippet_id}", response_model=SnippetRead)
def read_snippet(snippet_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one snippet."""
    return service.get_snippet(db, workspace_id=principal.workspace_id, snippet_id=snippet_id)


@router.patch("/api/v1/snippets/{snippet_id}", response_model=SnippetSaved)
def update_snippet(
    snippet_id: int, body: SnippetUpdate, principal: Writer, db: DbSession, runtime: RuntimeDep
) -> object:
    """Rename or change a snippet (409 renaming one in use)."""
    snippet, report = service.update_snippet(
        db,
        workspace_id=principal.workspace_id,
        snippet_id=snippet_id,
        data=body,
        actor=principal.actor,
        now=runtime.clock.now(),
    )
    db.commit()
    return _snippet_saved(snippet, report)


@router.delete("/api/v1/snippets/{snippet_id}", response_model=SnippetRead)
def delete_snippet(snippet_id: int, principal: Writer, db: DbSession) -> object:
    """Delete a snippet no template uses (409 naming the templates otherwise)."""
    snippet = service.delete_snippet(
        db, workspace_id=principal.workspace_id, snippet_id=snippet_id, actor=principal.actor
    )
    read = SnippetRead.model_validate(snippet)
    db.commit()
    return read
