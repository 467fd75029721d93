"""Pydantic shapes of the accounts API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class KeyCreate(BaseModel):
    """Ask for a new key."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["write", "secret"]
    name: str = Field(default="", max_length=200)
    scopes: list[str] = Field(default_factory=list)


class KeyRead(BaseModel):
    """A key as listed: never its value."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyIssued(KeyRead):
    """A key just created, with its value shown this one time."""

    key: str


class WorkspaceRead(BaseModel):
    """The caller's workspace."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    slug: str
    timezone: str
    default_region: str
    created_at: datetime


class AuditRead(BaseModel):
    """One audit entry."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    ip: str | None
    request_id: str | None
    created_at: datetime
