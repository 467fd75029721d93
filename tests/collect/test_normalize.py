"""The pure normaliser: field rules, clock skew, channel inference, consent signals, storability."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rapport.collect.normalize import (
    MAX_EVENT_BYTES,
    Envelope,
    InvalidJson,
    Normalized,
    Rejected,
    encoded_size,
    infer_channel,
    normalize,
    parse_json,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def ok(message: Any, **kw: Any) -> dict[str, Any]:
    result = normalize(message, received_at=NOW, **kw)
    assert isinstance(result, Normalized), result
    return result.row


def bad(message: Any, **kw: Any) -> Rejected:
    result = normalize(message, received_at=NOW, **kw)
    assert isinstance(result, Rejected), result
    return result


def fields(rejected: Rejected) -> set[str]:
    return {e.field for e in rejected.errors}


def test_minimal_track_becomes_a_pending_row() -> None:
    row = ok({"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m-1"})
    assert row["message_id"] == "m-1"
    assert row["type"] == "track"
    assert row["event"] == "Signed Up"
    assert row["user_id"] == "u1"
    assert row["anonymous_id"] is None
    assert row["timestamp"] == NOW
    assert row["received_at"] == NOW
    assert row["state"] == 0
    assert row["channel"] == "server"


def test_message_id_is_generated_when_missing() -> None:
    a = ok({"type": "track", "userId": "u1", "event": "E"})
    b = ok({"type": "track", "userId": "u1", "event": "E"})
    assert a["message_id"].startswith("api-")
    assert a["message_id"] != b["message_id"]


def test_route_type_wins_over_the_body() -> None:
    row = ok({"type": "identify", "userId": "u1", "event": "E"}, route_type="track")
    assert row["type"] == "track"


def test_numeric_ids_are_kept_as_decimal_strings() -> None:
    row = ok({"type": "identify", "userId": 42, "anonymousId": 7.0})
    assert row["user_id"] == "42"
    assert row["anonymous_id"] == "7"


@pytest.mark.parametrize(
    ("message", "field", "reason"),
    [
        ({"type": "track", "event": "E"}, "userId", "userId or anonymousId is required"),
        ({"type": "track", "userId": "", "anonymousId": "  ", "event": "E"}, "userId", "required"),
        ({"type": "track", "userId": True, "event": "E"}, "userId", "must be a string or a number"),
        ({"type": "track", "userId": {"a": 1}, "event": "E"}, "userId", "must be a string or a number"),
        ({"type": "track", "userId": "u"}, "event", "is required for track calls"),
        ({"type": "track", "userId": "u", "event": 5}, "event", "must be a string"),
        ({"type": "track", "userId": "u", "event": "x" * 201}, "event", "longer than 200"),
        ({"type": "track", "userId": "u" * 401, "event": "E"}, "userId", "longer than 400"),
        ({"type": "track", "userId": "u", "event": "E", "messageId": "m" * 201}, "messageId", "longer"),
        ({"type": "track", "userId": "u", "event": "E", "properties": []}, "properties", "must be an object"),
        ({"type": "identify", "userId": "u", "traits": "x"}, "traits", "must be an object"),
        ({"type": "identify", "userId": "u", "context": 3}, "context", "must be an object"),
        ({"type": "identify", "userId": "u", "context": {"ip": 1}}, "context.ip", "must be a string"),
        ({"type": "identify", "userId": "u", "context": {"device": "x"}}, "context.device", "object"),
        (
            {"type": "identify", "userId": "u", "context": {"location": {"latitude": 91}}},
            "context.location.latitude",
            "between -90 and 90",
        ),
        (
            {"type": "identify", "userId": "u", "context": {"location": {"longitude": "east"}}},
            "context.location.longitude",
            "must be a number",
        ),
        ({"type": "identify", "userId": "u", "timestamp": "yesterday"}, "timestamp", "ISO-8601"),
        ({"type": "identify", "userId": "u", "sentAt": 1700000000}, "sentAt", "ISO-8601 string"),
        ({"type": "nope", "userId": "u"}, "type", "must be one of"),
        ({"type": {"name": "track"}, "userId": "u"}, "type", "must be one of"),
        ({"type": ["track"], "userId": "u"}, "type", "must be one of"),
        (
            {"type": "track", "event": "e", "userId": "u", "context": {"ip": ["1.2.3.4"]}},
            "context.ip",
            "a string",
        ),
        (
            {"type": "track", "event": "e", "userId": "u", "context": {"page": "home"}},
            "context.page",
            "an object",
        ),
        ({"userId": "u"}, "type", "is required"),
        ({"type": "group", "userId": "u"}, "groupId", "is required for group calls"),
        ({"type": "alias", "userId": "u"}, "previousId", "is required for alias calls"),
        ({"type": "alias", "previousId": "p"}, "userId", "is required for alias calls"),
    ],
)
def test_field_level_reasons(message: dict[str, Any], field: str, reason: str) -> None:
    rejected = bad(message)
    matching = [e for e in rejected.errors if e.field == field]
    assert matching, rejected.errors
    assert reason in matching[0].reason


def test_all_errors_are_reported_at_once() -> None:
    rejected = bad({"type": "track", "properties": 1, "traits": 2})
    assert {"event", "properties", "traits", "userId"} <= fields(rejected)
    assert rejected.reason.startswith(rejected.errors[0].field)


def test_not_an_object_is_rejected() -> None:
    assert bad([1, 2]).errors[0].reason == "each message must be a JSON object"


def test_alias_and_group_keep_their_linked_ids_in_extra() -> None:
    alias = ok({"type": "alias", "userId": "u1", "previousId": 99})
    assert alias["extra"]["previousId"] == "99"
    assert alias["user_id"] == "u1"
    group = ok({"type": "group", "anonymousId": "a", "groupId": "g1", "traits": {"plan": "pro"}})
    assert group["extra"]["groupId"] == "g1"
    assert group["traits"] == {"plan": "pro"}


def test_page_and_screen_names_go_to_the_event_column() -> None:
    assert ok({"type": "page", "anonymousId": "a", "name": "Home"})["event"] == "Home"
    assert ok({"type": "screen", "anonymousId": "a", "name": "Basket"})["event"] == "Basket"
    assert ok({"type": "page", "anonymousId": "a"})["event"] is None


def test_unknown_fields_are_kept_and_the_write_key_is_not() -> None:
    row = ok(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "writeKey": "wk_secret",
            "integrations": {"All": True},
            "version": 2,
            "_metadata": {"bundled": ["x"]},
            "customTopLevel": {"a": [1, 2]},
        }
    )
    assert row["extra"]["integrations"] == {"All": True}
    assert row["extra"]["version"] == 2
    assert row["extra"]["_metadata"] == {"bundled": ["x"]}
    assert row["extra"]["customTopLevel"] == {"a": [1, 2]}
    assert "wk_secret" not in json.dumps(row, default=str)


def test_traits_on_non_identify_calls_are_kept_in_extra() -> None:
    row = ok({"type": "track", "userId": "u", "event": "E", "traits": {"x": 1}})
    assert row["traits"] == {}
    assert row["extra"]["traits"] == {"x": 1}


def test_context_fields_are_stored_as_sent() -> None:
    context = {
        "ip": "203.0.113.9",
        "locale": "en-GB",
        "timezone": "Europe/London",
        "location": {"latitude": 51.5, "longitude": -0.12, "city": "London"},
        "device": {"id": "d1", "type": "ios", "token": "t"},
        "os": {"name": "iOS", "version": "17"},
        "app": {"name": "Shop", "version": "1.2"},
        "campaign": {
            "name": "spring",
            "source": "newsletter",
            "medium": "email",
            "term": "t",
            "content": "c",
        },
    }
    row = ok({"type": "track", "userId": "u", "event": "E", "context": context})
    assert row["context"] == context


# --- clock skew (Segment: timestamp = receivedAt - (sentAt - originalTimestamp)) -------------------------


def test_clock_skew_is_corrected_with_sent_at() -> None:
    # The device clock is 2 hours fast; the event happened 5 minutes before the device sent it.
    device_now = NOW + timedelta(hours=2)
    row = ok(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "timestamp": (device_now - timedelta(minutes=5)).isoformat(),
            "sentAt": device_now.isoformat(),
        }
    )
    assert row["timestamp"] == NOW - timedelta(minutes=5)
    assert row["sent_at"] == device_now
    assert row["extra"]["originalTimestamp"] == (device_now - timedelta(minutes=5)).isoformat()


def test_original_timestamp_takes_precedence_over_timestamp() -> None:
    row = ok(
        {
            "type": "track",
            "userId": "u",
            "event": "E",
            "originalTimestamp": "2026-03-01T10:00:00Z",
            "timestamp": "2020-01-01T00:00:00Z",
            "sentAt": "2026-03-01T10:00:10Z",
        }
    )
    assert row["timestamp"] == NOW - timedelta(seconds=10)


def test_batch_sent_at_applies_to_its_messages() -> None:
    envelope = Envelope(sent_at="2026-03-01T09:00:30+00:00")
    row = ok(
        {"type": "track", "userId": "u", "event": "E", "timestamp": "2026-03-01T09:00:00Z"}, envelope=envelope
    )
    assert row["timestamp"] == NOW - timedelta(seconds=30)


def test_without_sent_at_the_timestamp_is_trusted_as_is() -> None:
    row = ok({"type": "track", "userId": "u", "event": "E", "timestamp": "2019-05-04T03:02:01+02:00"})
    assert row["timestamp"] == datetime(2019, 5, 4, 1, 2, 1, tzinfo=UTC)
    assert row["sent_at"] is None


def test_without_any_client_time_the_receive_time_is_used() -> None:
    row = ok({"type": "track", "userId": "u", "event": "E", "sentAt": "2030-01-01T00:00:00Z"})
    assert row["timestamp"] == NOW


def test_naive_timestamps_are_utc() -> None:
    row = ok({"type": "track", "userId": "u", "event": "E", "timestamp": "2026-01-02T03:04:05"})
    assert row["timestamp"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_client_received_at_is_not_trusted() -> None:
    row = ok({"type": "track", "userId": "u", "event": "E", "receivedAt": "2000-01-01T00:00:00Z"})
    assert row["received_at"] == NOW
    assert row["extra"]["clientReceivedAt"] == "2000-01-01T00:00:00Z"


# --- channel -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "channel"),
    [
        ({"context": {"channel": "browser"}}, "web"),
        ({"channel": "mobile"}, "app"),
        ({"context": {"source": "pos"}}, "store"),
        ({"properties": {"channel": "email"}}, "email"),
        ({"properties": {"channel": "SMS"}}, "sms"),
        ({"context": {"channel": "server", "app": {"name": "x"}}}, "server"),
        ({"context": {"app": {"name": "Shop"}}}, "app"),
        ({"context": {"device": {"type": "android"}}}, "app"),
        ({"context": {"page": {"url": "https://x"}}}, "web"),
        ({"context": {"userAgent": "Mozilla/5.0"}}, "web"),
        ({"context": {"library": {"name": "analytics-ios"}}}, "app"),
        ({"context": {"library": {"name": "analytics.js"}}}, "web"),
        ({"context": {"library": {"name": "analytics-python"}}}, "server"),
        ({"context": {"channel": "carrier-pigeon"}}, "server"),
        ({}, "server"),
    ],
)
def test_channel_rule(message: dict[str, Any], channel: str) -> None:
    context = message.get("context", {})
    properties = message.get("properties", {})
    assert infer_channel(message, context, properties) == channel
    row = ok({"type": "track", "userId": "u", "event": "E", **message})
    assert row["channel"] == channel


def test_batch_context_is_merged_under_the_message_context() -> None:
    envelope = Envelope(context={"library": {"name": "analytics-node"}, "ip": "198.51.100.1"})
    row = ok(
        {"type": "track", "userId": "u", "event": "E", "context": {"ip": "203.0.113.5"}}, envelope=envelope
    )
    assert row["context"] == {"library": {"name": "analytics-node"}, "ip": "203.0.113.5"}


# --- size and storability -----------------------------------------------------------------------------


def _message_of_size(size: int) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "userId": "u", "event": "E", "properties": {"pad": ""}}
    message["properties"]["pad"] = "x" * (size - encoded_size(message))
    assert encoded_size(message) == size
    return message


@pytest.mark.parametrize(("size", "accepted"), [(32_767, True), (32_768, True), (32_769, False)])
def test_event_size_boundary(size: int, accepted: bool) -> None:
    result = normalize(_message_of_size(size), received_at=NOW)
    assert isinstance(result, Normalized) is accepted
    if not accepted:
        assert isinstance(result, Rejected)
        assert result.code == "event_too_large"
        assert f"{MAX_EVENT_BYTES:,}" in result.reason


def test_raw_size_given_by_single_routes_is_the_one_checked() -> None:
    message = _message_of_size(100)
    assert isinstance(normalize(message, received_at=NOW, raw_size=MAX_EVENT_BYTES + 1), Rejected)


def test_nul_characters_and_lone_surrogates_are_refused() -> None:
    nul = bad({"type": "track", "userId": "u", "event": "E", "properties": {"a": "x\x00y"}})
    assert "NUL" in nul.reason
    key = bad({"type": "track", "userId": "u", "event": "E", "properties": {"k\x00": 1}})
    assert "NUL" in key.reason
    surrogate = bad(parse_json(b'{"type":"track","userId":"u","event":"E","properties":{"a":"\\ud800"}}'))
    assert "Unicode" in surrogate.reason
    # An escaped backslash followed by "u0000" is ordinary text.
    ok({"type": "track", "userId": "u", "event": "E", "properties": {"a": "\\u0000"}})


def test_parse_json_refuses_what_databases_cannot_store() -> None:
    for body in (b'{"a": NaN}', b'{"a": Infinity}', b"{", b"\xff\xfe", b"[" * 100_000):
        with pytest.raises(InvalidJson):
            parse_json(body)
    assert parse_json(b'{"a": 1}') == {"a": 1}


# --- consent signals (R16) ----------------------------------------------------------------------------


def test_write_key_grants_are_removed_and_flagged() -> None:
    result = normalize(
        {
            "type": "identify",
            "userId": "u",
            "traits": {"email": "a@example.com", "email_opt_in": True, "smsOptIn": "yes", "plan": "pro"},
        },
        received_at=NOW,
    )
    assert isinstance(result, Normalized)
    assert result.row["traits"] == {"email": "a@example.com", "plan": "pro"}
    assert result.row["extra"]["_consent_grant_refused"] is True
    assert {s.subject for s in result.refused_grants} == {"email", "sms"}
    assert {r["path"] for r in result.row["extra"]["_consent_refused"]} == {
        "traits.email_opt_in",
        "traits.smsOptIn",
    }


def test_consent_keys_stay_recognised_past_the_classification_cache() -> None:
    """Key classifications are remembered in a bounded table (every distinct property name of a busy
    workspace passes through it): filling it past its bound empties it, and a grant is still found."""
    from rapport.collect import normalize as module

    junk = {f"prop_{i}": i for i in range(module._KEY_KINDS_MAX + 10)}
    for start in range(0, len(junk), 500):
        part = dict(list(junk.items())[start : start + 500])
        assert ok({"type": "track", "event": "e", "userId": "u", "properties": part})["properties"] == part
    assert len(module._KEY_KINDS) <= module._KEY_KINDS_MAX
    result = normalize(
        {"type": "identify", "userId": "u", "traits": {"prop_1": 1, "email_opt_in": True}}, received_at=NOW
    )
    assert isinstance(result, Normalized)
    assert [s.subject for s in result.refused_grants] == ["email"]
    assert result.row["traits"] == {"prop_1": 1}


def test_withdrawals_are_kept_as_intent() -> None:
    result = normalize(
        {
            "type": "identify",
            "userId": "u",
            "traits": {"email_opt_in": False, "unsubscribed": True, "sms_opt_out": True},
        },
        received_at=NOW,
    )
    assert isinstance(result, Normalized)
    assert result.refused_grants == ()
    assert result.row["traits"] == {"email_opt_in": False, "unsubscribed": True, "sms_opt_out": True}
    withdrawals = result.row["extra"]["_consent_withdrawals"]
    assert {(w["path"], w["subject"]) for w in withdrawals} == {
        ("traits.email_opt_in", "email"),
        ("traits.unsubscribed", "all"),
        ("traits.sms_opt_out", "sms"),
    }
    assert "_consent_grant_refused" not in result.row["extra"]


def test_subscription_and_consent_objects() -> None:
    result = normalize(
        {
            "type": "track",
            "userId": "u",
            "event": "Preferences Updated",
            "properties": {
                "subscriptions": [
                    {"channel": "email", "status": "subscribed"},
                    {"channel": "sms", "status": "unsubscribed"},
                ],
                "consent": {"marketing": "granted", "analytics": False},
            },
            "context": {"consent": {"categoryPreferences": {"Advertising": True, "Functional": False}}},
        },
        received_at=NOW,
    )
    assert isinstance(result, Normalized)
    props = result.row["properties"]
    assert props["subscriptions"] == [{"channel": "sms", "status": "unsubscribed"}]
    assert props["consent"] == {"analytics": False}
    assert result.row["context"]["consent"] == {"categoryPreferences": {"Functional": False}}
    refused = {(s.path, s.subject) for s in result.refused_grants}
    assert refused == {
        ("properties.subscriptions[0]", "email"),
        ("properties.consent.marketing", "marketing"),
        ("context.consent.categoryPreferences.Advertising", "Advertising"),
    }
    withdrawn = {w["subject"] for w in result.row["extra"]["_consent_withdrawals"]}
    assert withdrawn == {"sms", "analytics", "Functional"}


def test_a_sender_allowed_to_grant_keeps_the_grant_as_intent() -> None:
    result = normalize(
        {"type": "identify", "userId": "u", "traits": {"email_opt_in": True}},
        received_at=NOW,
        may_grant_consent=True,
    )
    assert isinstance(result, Normalized)
    assert result.refused_grants == ()
    assert result.row["traits"] == {"email_opt_in": True}
    assert result.row["extra"]["_consent_grants"] == [
        {"path": "traits.email_opt_in", "subject": "email", "value": True}
    ]


def test_values_that_say_nothing_about_consent_are_ignored() -> None:
    row = ok({"type": "identify", "userId": "u", "traits": {"email_opt_in": "maybe", "optional": True}})
    assert row["traits"] == {"email_opt_in": "maybe", "optional": True}
    assert "_consent_withdrawals" not in row["extra"]
