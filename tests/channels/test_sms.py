"""The Twilio-compatible SMS adapter against a local fake speaking the Messages API, and webhook signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from rapport.channels.base import OutboundMessage, SendStatus, SmsPayload
from rapport.channels.net import SafeHttpClient
from rapport.channels.sms import (
    TwilioSmsChannel,
    form_params,
    is_e164,
    parse_inbound,
    parse_status_callback,
    twilio_signature,
    verify_twilio_signature,
)
from rapport.channels.sms_keywords import Keyword
from tests.channels.local_http import LocalHttpServer, Recorded
from tests.support import fake_twilio
from tests.support.fake_twilio import FakeTwilio

# Twilio's worked example ("Validating requests"): token 12345, this URL and these POST params; the
# signature was published for the first caller number in older docs and for the second in newer ones.
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_TOKEN = "12345"


def doc_params(caller: str) -> dict[str, str]:
    return {
        "CallSid": "CA1234567890ABCDE",
        "Caller": caller,
        "Digits": "1234",
        "From": caller,
        "To": "+18005551212",
    }


@pytest.mark.parametrize(
    ("caller", "expected"),
    [("+12349013030", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="), ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc=")],
)
def test_signature_matches_twilios_documented_example(caller: str, expected: str) -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, doc_params(caller)) == expected
    assert verify_twilio_signature(DOC_TOKEN, DOC_URL, doc_params(caller), expected)


def test_signature_refuses_tampering_and_accepts_port_variants() -> None:
    params = doc_params("+14158675310")
    good = twilio_signature(DOC_TOKEN, DOC_URL, params)
    assert not verify_twilio_signature(DOC_TOKEN, DOC_URL, {**params, "Digits": "9999"}, good)
    assert not verify_twilio_signature(DOC_TOKEN, DOC_URL + "&x=1", params, good)
    assert not verify_twilio_signature("other-token", DOC_URL, params, good)
    assert not verify_twilio_signature(DOC_TOKEN, DOC_URL, params, None)
    assert not verify_twilio_signature(DOC_TOKEN, DOC_URL, params, "")
    assert not verify_twilio_signature(DOC_TOKEN, DOC_URL, params, "é" + good)
    with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert verify_twilio_signature(DOC_TOKEN, with_port, params, good)
    assert verify_twilio_signature(DOC_TOKEN, DOC_URL, params, twilio_signature(DOC_TOKEN, with_port, params))


def test_multi_valued_params_are_signed_sorted() -> None:
    url = "https://example.com/hook"
    signed = url + "A1BxBy"  # name + value for each value, names sorted, then values sorted
    digest = hmac.new(b"t", signed.encode(), hashlib.sha1).digest()
    assert twilio_signature("t", url, {"B": ["y", "x"], "A": "1"}) == base64.b64encode(digest).decode()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def channel_for(twilio: FakeTwilio, **changes: object) -> TwilioSmsChannel:
    options: dict[str, object] = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "from_number": "+447700900001",
        "base_url": twilio.base_url,
        "status_callback": "http://127.0.0.1:1/sms/status?ws=1",
        "http": SafeHttpClient(allow_loopback=True, allowed_hosts={"127.0.0.1"}, timeout=5),
    }
    options.update(changes)
    return TwilioSmsChannel(**options)  # type: ignore[arg-type]


def sms(n: int, to: str, body: str = "Hi Ada, 20% off today. Reply STOP to opt out") -> OutboundMessage:
    return OutboundMessage(message_id=f"m{n}", channel="sms", to=to, sms=SmsPayload(body=body))


def test_messages_are_posted_in_the_messages_api_format(twilio: FakeTwilio) -> None:
    channel = channel_for(twilio)
    results = channel.send([sms(1, "+447700900123"), sms(2, "+14155550100", body="Grüße 🎉")])
    channel.close()

    assert [r.status for r in results] == [SendStatus.SENT, SendStatus.SENT]
    assert [r.provider_id for r in results] == [m.sid for m in twilio.messages]
    first, second = twilio.requests
    assert first["To"] == "+447700900123"
    assert first["From"] == "+447700900001"
    assert first["Body"] == "Hi Ada, 20% off today. Reply STOP to opt out"
    assert second["Body"] == "Grüße 🎉"
    callback = dict(parse_qsl(first["StatusCallback"].split("?", 1)[1]))
    assert callback == {"ws": "1", "rapport_mid": "m1"}


def test_provider_errors_are_classified(twilio: FakeTwilio) -> None:
    channel = channel_for(twilio)
    numbers = [fake_twilio.INVALID, fake_twilio.NOT_MOBILE, fake_twilio.THROTTLED, fake_twilio.BROKEN]
    results = channel.send([sms(n, to) for n, to in enumerate(numbers)])
    channel.close()
    assert [(r.status, r.error_code) for r in results] == [
        (SendStatus.FAILED_PERMANENT, "21211"),
        (SendStatus.FAILED_PERMANENT, "21614"),
        (SendStatus.FAILED_TRANSIENT, "20429"),
        (SendStatus.FAILED_TRANSIENT, "20500"),
    ]
    assert results[2].retry_after == 7
    assert "not a valid phone number" in (results[0].error or "")


def test_wrong_credentials_are_permanent(twilio: FakeTwilio) -> None:
    channel = channel_for(twilio, auth_token="wrong")
    [result] = channel.send([sms(1, "+447700900123")])
    assert (result.status, result.error_code) == (SendStatus.FAILED_PERMANENT, "20003")
    assert twilio.messages == []


def test_invalid_numbers_and_empty_bodies_never_reach_the_provider(twilio: FakeTwilio) -> None:
    channel = channel_for(twilio)
    results = channel.send(
        [sms(1, "07700900123"), sms(2, "+44 7700 900123"), sms(3, "+447700900123", body="")]
    )
    assert [r.status for r in results] == [SendStatus.FAILED_PERMANENT] * 3
    assert [r.error_code for r in results] == ["invalid_number", "invalid_number", "empty_body"]
    assert twilio.requests == []
    assert is_e164("+447700900123") and not is_e164("+0447700900123")


def test_lost_answer_is_unknown(twilio: FakeTwilio) -> None:
    channel = channel_for(twilio)
    [result] = channel.send([sms(1, fake_twilio.DROP)])
    channel.close()
    assert result.status is SendStatus.UNKNOWN
    assert len(twilio.requests) == 1


def test_provider_on_a_private_address_is_refused() -> None:
    channel = TwilioSmsChannel(
        account_sid="AC1", auth_token="t", from_number="+447700900001", base_url="http://10.0.0.1"
    )
    [result] = channel.send([sms(1, "+447700900123")])
    assert (result.status, result.error_code) == (SendStatus.FAILED_PERMANENT, "outbound_refused")


def test_status_callbacks_and_inbound_webhooks_verify_and_parse(twilio: FakeTwilio) -> None:
    with LocalHttpServer() as hooks:
        channel = channel_for(twilio, status_callback=hooks.url("/sms/status?ws=1"))
        [result] = channel.send([sms(7, "+447700900123")])
        channel.close()
        twilio.deliver(twilio.messages[0], "undelivered", error_code="30005")
        twilio.send_inbound(
            hooks.url("/sms/inbound"), from_="+447700900123", to="+447700900001", body="Stop!!"
        )

    status_hook, inbound_hook = hooks.requests

    def verify(request: Recorded, url: str) -> tuple[bool, dict[str, list[str]]]:
        params = form_params(parse_qsl(request.body.decode(), keep_blank_values=True))
        ok = verify_twilio_signature(
            twilio.auth_token, url, params, request.headers.get("x-twilio-signature")
        )
        return ok, params

    ok, params = verify(status_hook, hooks.url(status_hook.path))
    assert ok
    update = parse_status_callback(params, hooks.url(status_hook.path))
    assert (update.provider_id, update.status, update.error_code) == (
        result.provider_id,
        "undelivered",
        "30005",
    )
    assert update.message_id == "m7" and update.failed

    ok, params = verify(inbound_hook, hooks.url("/sms/inbound"))
    assert ok
    inbound = parse_inbound(params)
    assert (inbound.from_number, inbound.body, inbound.keyword) == (
        "+447700900123",
        "Stop!!",
        Keyword.OPT_OUT,
    )

    forged = {**params, "Body": "START"}
    assert not verify_twilio_signature(
        twilio.auth_token, hooks.url("/sms/inbound"), forged, inbound_hook.headers["x-twilio-signature"]
    )
