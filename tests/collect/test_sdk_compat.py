"""The official Segment and RudderStack Python SDKs, unchanged, against a real ``rapport serve``.

"Existing SDKs work unchanged" is the tracking API's promise (docs/tracking-api.md), so these tests do not
build requests the way we think an SDK does: the vendors' own libraries (``segment-analytics-python``,
``rudder-sdk-python``) send them, with their own batching thread, Basic auth, gzip, ``sentAt`` envelope,
retries and error callback, to a server process on 127.0.0.1 that processes what it stores.

Two things they found: RudderStack's identify sends its traits in ``context.traits`` only, and an SDK sends
``identify(u1)`` and ``alias(u1, u2)`` in one request, before the identify is stored (docs/identity.md).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from rudderstack.analytics import Client as RudderStackClient
from segment.analytics import Client as SegmentClient

from tests.support.server import RapportServer
from tests.support.tenants import Tenant

SDKS: dict[str, Callable[..., Any]] = {"segment": SegmentClient, "rudderstack": RudderStackClient}


@pytest.fixture
def server(db_url: str, tenant: Tenant, tmp_path: Path) -> Iterator[RapportServer]:
    """``rapport serve`` with its in-process worker over the test database (the tenant made first)."""
    running = RapportServer(db_url, workdir=tmp_path).start()
    try:
        yield running
    finally:
        running.stop()


def _client(sdk: str, write_key: str, server: RapportServer, errors: list[Any], **options: Any) -> Any:
    return SDKS[sdk](
        write_key,
        host=server.url,
        on_error=lambda error, batch: errors.append((error, batch)),
        max_retries=1,
        **options,
    )


def _lookup(server: RapportServer, tenant: Tenant, kind: str, value: str) -> dict[str, Any] | None:
    answer = httpx.get(
        f"{server.url}/api/v1/profiles/lookup",
        params={"kind": kind, "value": value},
        headers=tenant.secret_headers,
    )
    return answer.json() if answer.status_code == 200 else None


def _timeline(server: RapportServer, tenant: Tenant, profile_id: int) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{server.url}/api/v1/profiles/{profile_id}/events",
        params={"limit": 1000},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _eventually(probe: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("sdk", "gzip"), [("segment", False), ("segment", True), ("rudderstack", True)], ids=str
)
def test_every_call_of_an_official_sdk_lands_on_one_profile(
    server: RapportServer, tenant: Tenant, sdk: str, gzip: bool
) -> None:
    errors: list[Any] = []
    client = _client(sdk, tenant.write_key, server, errors, gzip=gzip)
    anon, user, renamed = f"anon-{sdk}", f"user-{sdk}", f"user-{sdk}-v2"
    ordered_at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)

    client.page(anonymous_id=anon, category="Shop", name="Home", properties={"url": "https://shop.test/"})
    client.identify(user, {"email": f"{sdk}@Shop.TEST", "plan": "pro"}, anonymous_id=anon)
    client.track(user, "Product Viewed", {"sku": "SKU-1"})
    order = {"total": 42.5, "currency": "GBP"}
    client.track(user, "Order Completed", order, timestamp=ordered_at, message_id=f"order-{sdk}")
    client.track(user, "Order Completed", order, timestamp=ordered_at, message_id=f"order-{sdk}")  # a retry
    client.screen(user, name="Basket")
    client.group(user, "acme-ltd", {"name": "Acme Ltd"})
    client.alias(user, renamed)
    client.flush()
    assert errors == []

    profile = _eventually(lambda: _lookup(server, tenant, "user_id", renamed), "the alias is applied")
    events = _eventually(
        lambda: (found := _timeline(server, tenant, profile["id"])) and len(found) >= 7 and found,
        "every call reaches the profile's timeline",
    )
    # one person, whichever identifier asks; the anonymous visit before the identify is theirs too
    for kind, value in (("user_id", user), ("anonymous_id", anon), ("email", f"{sdk}@shop.test")):
        found = _lookup(server, tenant, kind, value)
        assert found is not None and found["id"] == profile["id"], (kind, value)
    profile = _lookup(server, tenant, "user_id", renamed)
    assert profile is not None
    assert profile["traits"]["plan"] == "pro"  # RudderStack sends them in context.traits only
    assert profile["merges"] == []

    assert Counter(e["type"] for e in events) == {
        "page": 1,
        "identify": 1,
        "track": 2,  # the retried order is stored once
        "screen": 1,
        "group": 1,
        "alias": 1,
    }
    (stored,) = [e for e in events if e["message_id"] == f"order-{sdk}"]
    assert stored["event"] == "Order Completed" and stored["properties"] == order
    # the SDK's sentAt envelope corrects skew; on one clock the time stays what the caller gave
    assert abs(datetime.fromisoformat(stored["timestamp"]) - ordered_at).total_seconds() < 5
    assert stored["context"]["library"]["name"] == "analytics-python"
    assert stored["channel"] == "server"
    (page,) = [e for e in events if e["type"] == "page"]
    assert page["event"] == "Home" and page["properties"]["url"] == "https://shop.test/"


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_burst_larger_than_an_sdk_batch_arrives_whole(
    server: RapportServer, tenant: Tenant, sdk: str
) -> None:
    errors: list[Any] = []
    client = _client(sdk, tenant.write_key, server, errors, gzip=True)
    user = f"burst-{sdk}"
    for n in range(250):  # the SDKs upload at most 100 messages a request
        client.track(user, "Item Scanned", {"n": n})
    client.flush()
    assert errors == []
    profile = _eventually(lambda: _lookup(server, tenant, "user_id", user), "the burst's profile")
    events = _eventually(
        lambda: (found := _timeline(server, tenant, profile["id"])) and len(found) >= 250 and found,
        "all 250 events",
    )
    assert sorted(e["properties"]["n"] for e in events) == list(range(250))


@pytest.mark.parametrize("sdk", sorted(SDKS))
def test_a_wrong_write_key_reaches_the_sdks_error_callback_and_stores_nothing(
    server: RapportServer, tenant: Tenant, sdk: str
) -> None:
    errors: list[Any] = []
    client = _client(sdk, "wk_not-a-key", server, errors)
    client.track("intruder", "Order Completed", {"total": 1})
    client.flush()
    ((error, batch),) = errors
    assert error.status == 401
    assert [m["userId"] for m in batch] == ["intruder"]
    assert _lookup(server, tenant, "user_id", "intruder") is None
    # the same SDK with the right key is heard
    good: list[Any] = []
    client = _client(sdk, tenant.write_key, server, good)
    client.track("customer", "Order Completed", {"total": 1})
    client.flush()
    assert good == []
    _eventually(lambda: _lookup(server, tenant, "user_id", "customer"), "the good key's event")
