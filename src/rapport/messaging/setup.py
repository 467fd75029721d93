"""Build the channel adapters the settings describe (the composition root calls this)."""

from __future__ import annotations

from typing import Any, Literal, cast
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.channels.maildir import MaildirChannel
from rapport.channels.net import SafeHttpClient
from rapport.channels.push import PUSH_SERVICE_HOSTS, WebPushChannel
from rapport.channels.sms import TwilioSmsChannel
from rapport.channels.webhook import WebhookChannel
from rapport.messaging import service
from rapport.messaging.delivery import channels_of
from rapport.messaging.inapp import InboxChannel
from rapport.messaging.push_delivery import PushFanoutChannel
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
            id_domain=_id_domain(settings.base_url),
        )
    elif settings.email_maildir and not settings.smtp_host and "email" not in channels:
        channels["email"] = MaildirChannel(
            settings.email_maildir,
            id_domain=_id_domain(settings.base_url),
        )
    register_more_channels(runtime)


def _id_domain(base_url: str) -> str | None:
    """The host of the server's public URL: the right-hand side of the Message-IDs email gets."""
    return base_url.split("//")[-1].split("/")[0].split(":")[0] or None


def register_more_channels(runtime: Runtime) -> None:
    """SMS, push, webhook and the in-app inbox from the settings (adapters already there are kept)."""
    channels = channels_of(runtime)
    settings = runtime.settings
    loopback = settings.outbound_allow_loopback
    channels.setdefault("inapp", InboxChannel())
    if (
        settings.twilio_account_sid
        and settings.twilio_auth_token
        and settings.sms_from
        and "sms" not in channels
    ):
        sender = settings.sms_from
        service_sid = sender if sender.startswith("MG") else None
        host = urlsplit(settings.twilio_base_url).hostname or ""
        channels["sms"] = TwilioSmsChannel(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token,
            from_number=None if service_sid else sender,
            messaging_service_sid=service_sid,
            base_url=settings.twilio_base_url,
            http=SafeHttpClient(allowed_hosts={host}, allow_loopback=loopback, max_response_bytes=256_000),
        )
    if settings.vapid_private_key and settings.vapid_subject and "push" not in channels:
        web_push = WebPushChannel(
            vapid_private_key=settings.vapid_private_key,
            vapid_subject=settings.vapid_subject,
            http=SafeHttpClient(
                allowed_hosts=None if loopback else PUSH_SERVICE_HOSTS,
                allow_loopback=loopback,
                max_response_bytes=64_000,
            ),
        )
        channels["push"] = PushFanoutChannel(runtime, web_push)
    if settings.webhook_secret and "webhook" not in channels:
        channels["webhook"] = WebhookChannel(
            secret=settings.webhook_secret,
            http=SafeHttpClient(
                allowed_hosts=settings.webhook_allowed_hosts or None,
                allow_loopback=loopback,
                max_response_bytes=64_000,
                timeout=10.0,
                total_timeout=15.0,
            ),
            clock=runtime.clock,
        )


def export_messages(db: Session, workspace_id: int, profile_id: int) -> list[dict[str, Any]]:
    """The messages section of a GDPR export."""
    rows = service.list_for_profile(db, workspace_id=workspace_id, profile_id=profile_id, limit=100_000)
    return [MessageRead.model_validate(m).model_dump(mode="json") | {"content": m.content} for m in rows]
