"""Campaign messages from saved templates: rule blocks chosen per recipient and snippets, rendered at send
time by content/; recommendations computed when queued and looped over in Liquid; at the SMTP sink."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.runtime import Runtime
from tests.campaigns.conftest import call, make_campaign, make_segment, run_worker
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant


def _html(message: object) -> str:
    body = message.parsed().get_body(("html",))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content())


def test_rule_blocks_and_snippets_are_rendered_per_recipient(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 2, extra={"city": "Leeds", "plan": "basic"})
    client.post(
        "/v1/identify", json={"userId": "p1", "traits": {"plan": "pro"}}, headers=tenant.write_headers
    )
    run_worker(app)
    segment_id = make_segment(client, tenant, "Leeds", 'city = "Leeds"')
    call(
        client, tenant, "POST", "/api/v1/snippets", json={"name": "footer", "source": "<p>Hartley footer</p>"}
    )
    template = call(
        client,
        tenant,
        "POST",
        "/api/v1/templates",
        json={
            "name": "Plans",
            "channel": "email",
            "content": {"subject": "For {{ first_name }}", "html": '{{ blocks.hero }}{% render "footer" %}'},
            "blocks": [
                {
                    "name": "hero",
                    "variants": [
                        {"condition": 'plan = "pro"', "source": "<h1>Pro perks</h1>", "name": "pro"}
                    ],
                    "default": "<h1>Go pro, {{ first_name }}</h1>",
                }
            ],
        },
    )
    campaign = make_campaign(client, tenant, name="Plans", channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", "template_id": template["id"]}])  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)
    received = {m.rcpt_tos[0]: m for m in sink.wait_for(2)}
    basic, pro = received["person0@example.com"], received["person1@example.com"]
    assert basic.parsed()["Subject"] == "For Person0"
    assert "<h1>Go pro, Person0</h1>" in _html(basic) and "Hartley footer" in _html(basic)
    assert "<h1>Pro perks</h1>" in _html(pro) and "Go pro" not in _html(pro)


def _shop(runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI) -> int:
    """Three York customers, three products, orders; return the York segment's id."""
    make_people(runtime, tenant, 3, extra={"city": "York"})
    call(client, tenant, "POST", "/api/v1/products/batch", json={"products": [
        {"product_id": "boots", "name": "Walking boots", "category": "Footwear", "price": 80},
        {"product_id": "socks", "name": "Wool socks", "category": "Footwear", "price": 9},
        {"product_id": "hat", "name": "Bobble hat", "category": "Accessories", "price": 15},
    ]})  # fmt: skip
    orders = [("p0", ["boots", "socks"]), ("p1", ["boots", "socks"]), ("p2", ["boots"])]
    batch = [
        {"type": "track", "userId": user, "event": "order_completed",
         "properties": {"total": 10, "products": [{"product_id": p} for p in items]}}
        for user, items in orders
    ]  # fmt: skip
    assert client.post("/v1/batch", json={"batch": batch}, headers=tenant.write_headers).status_code == 200
    run_worker(app)
    return make_segment(client, tenant, "York", 'city = "York"')


def _assert_picks(received: dict[str, str]) -> None:
    # p2 bought boots only: socks are bought together with boots; nobody is offered what they bought
    assert "<li>Wool socks</li>" in received["person2@example.com"]
    assert "Walking boots" not in received["person2@example.com"]
    assert "Wool socks" not in received["person0@example.com"]
    assert "Walking boots" not in received["person0@example.com"]


def test_recommendations_are_computed_when_queued_and_exclude_what_was_bought(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    segment_id = _shop(runtime, tenant, client, app)
    html = "<ul>{% for p in recommendations limit: 2 %}<li>{{ p.name }}</li>{% endfor %}</ul>"
    campaign = make_campaign(client, tenant, name="Picks", channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", "content": {"subject": "Picks", "html": html}}])  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)
    _assert_picks({m.rcpt_tos[0]: _html(m) for m in sink.wait_for(3)})


def test_a_saved_template_gets_recommendations_through_its_blocks_and_snippets(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    # Rendered at send time by content/ (rule block + snippet): the picks computed when the row was queued
    # must reach that renderer too, found through the snippet the block renders.
    segment_id = _shop(runtime, tenant, client, app)
    picks = "<ul>{% for p in recommendations limit: 2 %}<li>{{ p.name }}</li>{% endfor %}</ul>"
    call(client, tenant, "POST", "/api/v1/snippets", json={"name": "picks", "source": picks})
    template = call(client, tenant, "POST", "/api/v1/templates", json={
        "name": "Picks", "channel": "email",
        "content": {"subject": "Picks", "html": "{{ blocks.body }}"},
        "blocks": [{"name": "body", "variants": [{"condition": 'city = "Leeds"', "source": "Leeds", "name": "l"}],
                    "default": '{% render "picks" %}'}],
    })  # fmt: skip
    campaign = make_campaign(client, tenant, name="Saved picks", channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", "template_id": template["id"]}])  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)
    _assert_picks({m.rcpt_tos[0]: _html(m) for m in sink.wait_for(3)})
