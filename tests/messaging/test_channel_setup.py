"""Channels built from the settings: the webhook channel signs, and stays SSRF-safe unless loopback is allowed."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rapport.app import wire_runtime
from rapport.channels.webhook import SIGNATURE_HEADER, WebhookChannel, verify_signature
from rapport.config import Settings
from rapport.kit.clock import FakeClock
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.messaging.inapp import InboxChannel
from rapport.runtime import Runtime, build_runtime
from tests.channels.local_http import LocalHttpServer
from tests.messaging.conftest import make_people
from tests.messaging.outbox_helpers import NOON, message, queue
from tests.support.tenants import Tenant

SECRET = "hook-secret-0123456789"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
def hook_server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        yield server


def _deliver(runtime: Runtime, settings: Settings, tenant: Tenant, url: str, key: str | None = None) -> str:
    rt = build_runtime(settings, clock=runtime.clock)
    try:
        wire_runtime(rt)
        assert isinstance(channels_of(rt)["webhook"], WebhookChannel)
        assert isinstance(channels_of(rt)["inapp"], InboxChannel)
        [pid] = make_people(rt, tenant, 1, consent=None)
        row = queue(
            rt, tenant, pid, key or f"hook:{url}", channel="webhook", kind="service",
            content={"url": url, "body": '{"text": "Order for {{ profile.first_name }}"}'},
        )  # fmt: skip
        deliverer = Deliverer(rt, worker_id="hook-deliverer")
        try:
            deliverer.drain()
        finally:
            deliverer.close()
            channels_of(rt)["webhook"].close()
        return row.message_id
    finally:
        rt.close()


def _loopback_allowed(runtime: Runtime, *, host: str) -> Settings:
    """The test settings with a signed webhook channel that may call loopback, on ``host`` only."""
    return runtime.settings.model_copy(
        update={"webhook_secret": SECRET, "outbound_allow_loopback": True, "webhook_allowed_hosts": [host]}
    )


def test_a_settings_webhook_channel_refuses_loopback_by_default(
    runtime: Runtime, tenant: Tenant, hook_server: LocalHttpServer
) -> None:
    configured = runtime.settings.model_copy(update={"webhook_secret": SECRET})
    sent = _deliver(runtime, configured, tenant, hook_server.url("/hook"))
    row = message(runtime, sent)
    assert row.status == "dead"
    assert hook_server.requests == []  # R24: nothing left the building


def test_allowed_hosts_and_loopback_let_a_signed_webhook_through(
    runtime: Runtime, tenant: Tenant, hook_server: LocalHttpServer
) -> None:
    configured = _loopback_allowed(runtime, host="127.0.0.1")
    sent = _deliver(runtime, configured, tenant, hook_server.url("/hook"))
    assert message(runtime, sent).status == "sent"
    [got] = hook_server.requests
    assert json.loads(got.body) == {"text": "Order for Person0"}
    assert verify_signature(SECRET, got.headers[SIGNATURE_HEADER.lower()], got.body, now=NOON.timestamp())


def test_a_host_outside_the_allow_list_is_refused(
    runtime: Runtime, tenant: Tenant, hook_server: LocalHttpServer
) -> None:
    configured = _loopback_allowed(runtime, host="hooks.example")
    sent = _deliver(runtime, configured, tenant, hook_server.url("/hook"))
    assert message(runtime, sent).status == "dead"
    assert hook_server.requests == []


def test_a_webhook_url_longer_than_the_address_column_is_called_whole_and_recorded_cut(
    runtime: Runtime, tenant: Tenant, hook_server: LocalHttpServer
) -> None:
    from rapport.messaging.delivery import TO_ADDRESS_MAX

    configured = _loopback_allowed(runtime, host="127.0.0.1")
    url = hook_server.url("/hook?token=" + "t" * (TO_ADDRESS_MAX + 50))
    sent = _deliver(runtime, configured, tenant, url, key="hook:long")
    row = message(runtime, sent)
    assert row.status == "sent"
    [got] = hook_server.requests
    assert got.path.endswith("t" * (TO_ADDRESS_MAX + 50))  # the request went to the whole URL
    assert row.to_address == url[:TO_ADDRESS_MAX]
