"""Pydantic shapes of the templates and snippets API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rapport.kit.bounds import Id

Channel = Literal["email", "sms", "push", "inapp", "webhook"]
NAME = r"^[A-Za-z0-9_][A-Za-z0-9_ .-]*$"
BLOCK_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class VariantIn(BaseModel):
    """One variant of a rule block: its condition (segment language), Liquid source and optional name."""

    condition: str = Field(min_length=1, max_length=5_000)
    source: str = Field(default="", max_length=100_000)
    name: str = Field(default="", max_length=40)


class BlockIn(BaseModel):
    """A rule block placed in the parts as ``{{ blocks.NAME }}``: variants tried in order, then the default."""

    name: str = Field(min_length=1, max_length=60, pattern=BLOCK_NAME)
    variants: list[VariantIn] = Field(default_factory=list, max_length=50)
    default: str = Field(default="", max_length=100_000)


class TemplateInput(BaseModel):
    """The content of a template: the channel's Liquid parts and its rule blocks."""

    content: dict[str, str | None] = Field(default_factory=dict)
    blocks: list[BlockIn] = Field(default_factory=list, max_length=50)


class TemplateCreate(TemplateInput):
    """A new template."""

    name: str = Field(min_length=1, max_length=200)
    channel: Channel
    description: str = Field(default="", max_length=2_000)


class TemplateUpdate(BaseModel):
    """Changes to a template; a change of content or blocks bumps its version."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    content: dict[str, str | None] | None = None
    blocks: list[BlockIn] | None = Field(default=None, max_length=50)
    #: the version the editor started from; a different current version answers 409 (lost update)
    expected_version: int | None = None


class ValidateBody(TemplateInput):
    """A template to check without saving it."""

    channel: Channel


class Issue(BaseModel):
    """One problem of a template, placed in its part: ``html``, ``blocks.hero.variants.1.condition``, …"""

    part: str
    severity: Literal["error", "warning"]
    code: str
    message: str
    line: int | None = None
    column: int | None = None
    suggestion: str | None = None


class ValidationRead(BaseModel):
    """Errors (the template cannot be saved) and warnings (it can, but look)."""

    ok: bool
    errors: list[Issue]
    warnings: list[Issue]


class TemplateRead(BaseModel):
    """A saved template."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    channel: str
    description: str
    content: dict[str, Any]
    blocks: list[Any]
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


class TemplateSaved(TemplateRead):
    """A saved template with the warnings of its content."""

    warnings: list[Issue] = Field(default_factory=list)


class DuplicateBody(BaseModel):
    """The name of the copy (default: "<name> (copy)")."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class SnippetCreate(BaseModel):
    """A new snippet, used in templates as ``{% render "name" %}``."""

    name: str = Field(min_length=1, max_length=100, pattern=NAME)
    source: str = Field(default="", max_length=100_000)


class SnippetUpdate(BaseModel):
    """Changes to a snippet."""

    name: str | None = Field(default=None, min_length=1, max_length=100, pattern=NAME)
    source: str | None = Field(default=None, max_length=100_000)


class SnippetRead(BaseModel):
    """A saved snippet."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    source: str
    created_at: datetime
    updated_at: datetime


class SnippetSaved(SnippetRead):
    """A saved snippet with the warnings of its source."""

    warnings: list[Issue] = Field(default_factory=list)


class PreviewBody(BaseModel):
    """Whom to preview as: one profile (by id, email or user id) or a random sample of a segment.

    ``content``/``blocks`` preview unsaved edits instead of the saved template.
    """

    profile_id: Id | None = None
    email: str | None = Field(default=None, max_length=320)
    user_id: str | None = Field(default=None, max_length=400)
    segment_id: Id | None = None
    sample: int = Field(default=5, ge=1, le=20)
    content: dict[str, str | None] | None = None
    blocks: list[BlockIn] | None = None
    extra_context: dict[str, Any] = Field(default_factory=dict)


class PartError(BaseModel):
    """Why one part did not render: a stable reason and where."""

    part: str
    reason: str
    message: str
    line: int | None = None
    column: int | None = None


class SmsInfo(BaseModel):
    """How the SMS body travels."""

    encoding: str
    units: int
    segments: int
    per_segment: int
    remaining: int


class BlockChoice(BaseModel):
    """Which variant a block showed (``default`` when none matched)."""

    block: str
    variant: str
    index: int | None


class PreviewItem(BaseModel):
    """The template rendered for one profile, in its channel's format."""

    profile_id: int
    label: str
    ok: bool
    parts: dict[str, Any]
    text_generated: bool = False
    mime_bytes: int | None = None
    sms: SmsInfo | None = None
    webhook_json: Any = None
    choices: list[BlockChoice] = Field(default_factory=list)
    errors: list[PartError] = Field(default_factory=list)
    elapsed_ms: float = 0.0


class PreviewRead(BaseModel):
    """Previews of a template for one or more profiles."""

    template_id: int | None
    channel: str
    items: list[PreviewItem]
