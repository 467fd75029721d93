"""The in-memory fake, and every adapter fitting the Channel port."""

from __future__ import annotations

import pytest

from rapport.channels import Channel, EmailPayload, FakeChannel, OutboundMessage, SendStatus, SmsPayload
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.channels.push import WebPushChannel
from rapport.channels.sms import TwilioSmsChannel
from rapport.channels.webhook import WebhookChannel
from tests.channels.test_push import vapid_pem


def message(n: int) -> OutboundMessage:
    return OutboundMessage(
        f"m{n}", "email", f"p{n}@example.com", email=EmailPayload("Hi", "news@shop.example", text="x")
    )


def test_fake_records_and_fails_on_request() -> None:
    channel = FakeChannel(
        "email",
        outcomes={"m2": SendStatus.FAILED_TRANSIENT, "m3": SendStatus.UNKNOWN},
        decide=lambda m: SendStatus.FAILED_PERMANENT if m.to.startswith("p4") else SendStatus.SENT,
    )
    results = channel.send([message(n) for n in range(1, 6)])
    assert [r.status for r in results] == [
        SendStatus.SENT,
        SendStatus.FAILED_TRANSIENT,
        SendStatus.UNKNOWN,
        SendStatus.FAILED_PERMANENT,
        SendStatus.SENT,
    ]
    assert [r.message_id for r in results] == ["m1", "m2", "m3", "m4", "m5"]
    assert [m.message_id for m in channel.received] == ["m1", "m2", "m3", "m4", "m5"]
    assert [m.message_id for m in channel.sent] == ["m1", "m3", "m5"]  # an unknown one did get through
    assert results[0].provider_id and results[0].ok and not results[1].ok
    channel.close()
    with pytest.raises(RuntimeError):
        channel.send([message(9)])


def test_fail_all() -> None:
    channel = FakeChannel("sms", fail_all=SendStatus.FAILED_TRANSIENT)
    sms = OutboundMessage("s1", "sms", "+447700900123", sms=SmsPayload("hi"))
    assert channel.send([sms])[0].status is SendStatus.FAILED_TRANSIENT
    assert channel.sent == []


def test_every_adapter_fits_the_port() -> None:
    adapters: list[object] = [
        FakeChannel(),
        SmtpChannel(SmtpConfig()),
        TwilioSmsChannel(account_sid="AC1", auth_token="t", from_number="+447700900001"),
        WebPushChannel(vapid_private_key=vapid_pem(), vapid_subject="mailto:ops@shop.example"),
        WebhookChannel(secret="s"),
    ]
    for adapter in adapters:
        assert isinstance(adapter, Channel)
    assert [a.name for a in adapters if isinstance(a, Channel)] == ["fake", "email", "sms", "push", "webhook"]


def test_a_payload_of_the_wrong_kind_is_permanent() -> None:
    sms = OutboundMessage("s1", "sms", "+447700900123", sms=SmsPayload("hi"))
    for adapter in (
        SmtpChannel(SmtpConfig()),
        WebhookChannel(secret="s"),
        WebPushChannel(vapid_private_key=vapid_pem(), vapid_subject="mailto:ops@shop.example"),
    ):
        [result] = adapter.send([sms])
        assert (result.status, result.error_code) == (SendStatus.FAILED_PERMANENT, "no_payload")
    email = message(1)
    [result] = TwilioSmsChannel(account_sid="AC1", auth_token="t", from_number="+44770090001").send([email])
    assert (result.status, result.error_code) == (SendStatus.FAILED_PERMANENT, "no_payload")
