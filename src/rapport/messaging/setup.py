"""Build the channel adapters the settings describe (the composition root calls this)."""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy.orm import Session

from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.messaging import service
from rapport.messaging.delivery import channels_of
from rapport.messaging.schemas import MessageRead
from rapport.runtime import Runtime


def register_channels(runtime: Runtime) -> None:
    """Add the configured adapters to the runtime (adapters already there — e.g. tests' — are kept)."""
    channels = channels_of(runtime)
    settings = runtime.settings
    if settings.smtp_host and "email" not in channels:
        security = cast(Literal["none", "starttls", "ssl"], settings.smtp_security)
        channels["email"] = SmtpChannel(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                security=security,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                pool_size=settings.smtp_pool_size,
            ),
            id_domain=settings.base_url.split("//")[-1].split("/")[0].split(":")[0] or None,
        )


def export_messages(db: Session, workspace_id: int, profile_id: int) -> list[dict[str, Any]]:
    """The messages section of a GDPR export."""
    rows = service.list_for_profile(db, workspace_id=workspace_id, profile_id=profile_id, limit=100_000)
    return [MessageRead.model_validate(m).model_dump(mode="json") | {"content": m.content} for m in rows]
