"""Pydantic shapes of the profiles API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class IdentityRead(BaseModel):
    """One identifier of a profile."""

    model_config = ConfigDict(from_attributes=True)

    kind: str
    value: str
    created_at: datetime
    source_event_id: int | None = None


class MergeRead(BaseModel):
    """A recorded merge: ``merged_id`` was folded into ``survivor_id``."""

    model_config = ConfigDict(from_attributes=True)

    survivor_id: int
    merged_id: int
    reason: str
    source_event_id: int | None
    details: dict[str, Any]
    created_at: datetime


class ProfileSummary(BaseModel):
    """A profile as listed by search."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str | None
    phone: str | None
    name: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    created_at: datetime


class ProfileRead(ProfileSummary):
    """One profile with its traits, identifiers and merges."""

    timezone: str | None
    timezone_source: str | None
    traits: dict[str, Any]
    trait_times: dict[str, Any]
    updated_at: datetime
    identities: list[IdentityRead]
    merges: list[MergeRead]
    #: Computed traits (exact at the time of the request) and scores (RFM, CLV, churn, lifestyle, …).
    computed: dict[str, Any] = {}
    #: When the id asked for was merged away, the id asked for (the answer is the survivor).
    requested_id: int | None = None


class EventRead(BaseModel):
    """One event of a profile's timeline."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str
    type: str
    event: str | None
    channel: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    source: str


class TraitChangeRead(BaseModel):
    """One change of one trait."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    value: Any
    previous: Any
    set_at: datetime
    source: str
    source_event_id: int | None
    recorded_at: datetime


class TraitsRead(BaseModel):
    """Current traits and when each was set."""

    profile_id: int
    traits: dict[str, Any]
    trait_times: dict[str, Any]


class ErasureRead(BaseModel):
    """What an erasure deleted and suppressed."""

    profile_id: int
    deleted: dict[str, int]
    suppressed: int
