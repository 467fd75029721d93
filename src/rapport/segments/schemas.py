"""Pydantic shapes of the segments API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SegmentInput(BaseModel):
    """A definition: readable ``text`` or the JSON ``ast`` (exactly one)."""

    text: str | None = Field(default=None, max_length=20_000)
    ast: dict[str, Any] | None = None


class SegmentCreate(SegmentInput):
    """A new segment."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""


class SegmentUpdate(SegmentInput):
    """Changes to a segment; a new definition bumps its version."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None


class SegmentRead(BaseModel):
    """A saved segment."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    text: str
    ast: dict[str, Any]
    version: int
    status: str
    seed: str
    member_count: int
    by_time: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    refreshed_at: datetime | None
    archived_at: datetime | None


class ProfileSample(BaseModel):
    """A profile shown in a preview or a member list."""

    id: int
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    entered_at: datetime | None = None


class PreviewRead(BaseModel):
    """How many profiles a definition matches now, and the first 20 of them."""

    text: str
    ast: dict[str, Any]
    count: int
    sample: list[ProfileSample]
    elapsed_ms: float
