"""Pydantic shapes of the messaging API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rapport.kit.bounds import Id, Moment


class MessageSend(BaseModel):
    """One message to one person, e.g. a receipt (``kind: service``) or a one-off marketing message.

    Address the person by ``profile_id`` or ``user_id``. Text fields are Liquid templates rendered at send
    time with the profile (``{{ profile.first_name | default: "there" }}``) and ``data``.
    """

    model_config = ConfigDict(extra="forbid")

    profile_id: Id | None = None
    user_id: str | None = Field(default=None, max_length=400)
    channel: Literal["email", "sms", "webhook", "push", "inapp"]
    kind: Literal["service", "marketing"] = "service"
    topic: str = Field(default="", max_length=64)
    subject: str | None = Field(default=None, max_length=2000)
    html: str | None = Field(default=None, max_length=500_000)
    text: str | None = Field(default=None, max_length=200_000)
    body: str | None = Field(
        default=None, max_length=20_000, description="SMS text, or webhook JSON template"
    )
    url: str | None = Field(
        default=None, max_length=2000, description="Webhook target, or where push/in-app opens"
    )
    title: str | None = Field(default=None, max_length=500, description="Push and in-app title")
    image: str | None = Field(default=None, max_length=2000, description="In-app image URL")
    icon: str | None = Field(default=None, max_length=2000, description="Push icon URL")
    from_address: str | None = Field(default=None, max_length=320)
    from_name: str | None = Field(default=None, max_length=200)
    reply_to: str | None = Field(default=None, max_length=320)
    data: dict[str, Any] = Field(default_factory=dict, description="Extra variables for the template")
    priority: int = Field(default=50, ge=0, le=1000)
    send_at: Moment | None = None

    @model_validator(mode="after")
    def _who(self) -> MessageSend:
        if (self.profile_id is None) == (self.user_id is None):
            raise ValueError("give exactly one of profile_id or user_id")
        return self

    def content(self) -> dict[str, Any]:
        """Return the outbox content of this message."""
        keys = (
            "subject",
            "html",
            "text",
            "body",
            "url",
            "title",
            "image",
            "icon",
            "from_address",
            "from_name",
            "reply_to",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        if self.data:
            out["data"] = self.data
        return out


class MessageRead(BaseModel):
    """An outbox row as the API shows it (content excluded)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    message_id: str
    profile_id: int
    campaign_id: int | None
    variant: str | None
    channel: str
    topic: str
    kind: str
    status: str
    status_reason: str | None
    attempts: int
    run_at: datetime
    sent_at: datetime | None
    provider_id: str | None
    last_error: str | None
    created_at: datetime
