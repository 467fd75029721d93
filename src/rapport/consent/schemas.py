"""Pydantic shapes of the consent API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TopicCreate(BaseModel):
    """A new subscription topic."""

    model_config = ConfigDict(extra="forbid")

    key: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=2000)
    opt_in: bool = True
    is_service: bool = False


class TopicRead(BaseModel):
    """A topic."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    key: str
    name: str
    description: str
    opt_in: bool
    is_service: bool


class ConsentChange(BaseModel):
    """A consent statement made on a person's behalf (a signup form, a call centre, a POS)."""

    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "sms", "push", "inapp", "webhook", ""]
    action: Literal["granted", "withdrawn", "paused"]
    topic: str = Field(default="", max_length=64)
    source: str = Field(default="api", max_length=40)
    wording: str | None = Field(default=None, max_length=4000, description="The text the person agreed to")
    wording_version: str | None = Field(default=None, max_length=40)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=400)
    weeks: int | None = Field(default=None, ge=1, le=52, description="For action=paused")


class DoubleOptInRequest(BaseModel):
    """Start a double opt-in for email: nothing but the confirmation is sent until confirmed (R15)."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(default="", max_length=64)
    source: str = Field(default="signup_form", max_length=40)
    wording: str | None = Field(default=None, max_length=4000)
    wording_version: str | None = Field(default=None, max_length=40)
    ip: str | None = Field(default=None, max_length=64)


class SubscriptionRead(BaseModel):
    """One subscription row."""

    model_config = ConfigDict(from_attributes=True)

    channel: str
    topic: str
    state: str
    paused_until: datetime | None
    updated_at: datetime
    source: str


class ConsentRecordRead(BaseModel):
    """One consent log entry."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    profile_id: int
    channel: str
    topic: str
    action: str
    state_before: str | None
    state_after: str
    source: str
    actor: str
    wording: str | None
    wording_version: str | None
    ip: str | None
    details: dict[str, Any]
    created_at: datetime


class ConsentRead(BaseModel):
    """A profile's subscriptions and its consent log."""

    profile_id: int
    subscriptions: list[SubscriptionRead]
    log: list[ConsentRecordRead]


class DoubleOptInStarted(BaseModel):
    """A double opt-in waiting for the person's click."""

    profile_id: int
    state: str
    confirm_url: str
