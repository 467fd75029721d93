"""Delivery channels: one small port (``Channel``), a real adapter per provider, and an in-memory fake.

The public surface::

    from rapport.channels import Channel, OutboundMessage, SendResult, SendStatus, FakeChannel
    from rapport.channels.email import SmtpChannel, SmtpConfig
    from rapport.channels.sms import TwilioSmsChannel
    from rapport.channels.push import WebPushChannel
    from rapport.channels.webhook import WebhookChannel

Adapters import their heavy dependencies (dkimpy, pywebpush) lazily, so importing this package is cheap.
"""

from rapport.channels.base import (
    Channel,
    EmailPayload,
    OutboundMessage,
    PushPayload,
    PushSubscription,
    SendResult,
    SendStatus,
    SmsPayload,
    WebhookPayload,
)
from rapport.channels.fake import FakeChannel

__all__ = [
    "Channel",
    "EmailPayload",
    "FakeChannel",
    "OutboundMessage",
    "PushPayload",
    "PushSubscription",
    "SendResult",
    "SendStatus",
    "SmsPayload",
    "WebhookPayload",
]
