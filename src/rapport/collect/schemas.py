"""Pydantic shapes of the quarantine API (the tracking routes speak the Segment spec, parsed by hand)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rapport.kit.bounds import Id


class QuarantinedEventRead(BaseModel):
    """A quarantined message with its payload, reason and replay state."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    payload: Any = Field(description="The message as received (parsed JSON; a string if it was not JSON)")
    reason: str
    details: Any = None
    source: str
    received_at: datetime
    replayed_at: datetime | None = None
    replay_result: str | None = None


class PayloadUpdate(BaseModel):
    """A corrected message to replace a quarantined payload before replaying it."""

    payload: dict[str, Any]


class ReplayRequest(BaseModel):
    """Which quarantined events to replay: the given ids, or every open one (up to ``limit``)."""

    ids: list[Id] | None = Field(default=None, max_length=10_000)
    limit: int = Field(default=1000, ge=1, le=10_000)


class ReplayResultRead(BaseModel):
    """The outcome of replaying one quarantined event."""

    id: int
    status: str = Field(description="stored | invalid | already_replayed")
    message_id: str | None = None
    reason: str | None = None


class ReplaySummary(BaseModel):
    """The outcome of a replay run."""

    stored: int
    invalid: int
    skipped: int
    results: list[ReplayResultRead]
