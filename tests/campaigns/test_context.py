"""What a campaign message's Liquid can read, checked at the SMTP sink: computed traits, segments, the
recipient's currency, the nearest store and products by id — the same whether the variant carries its own
Liquid (rendered by messaging/render.py) or names a saved template with rule blocks (content/rendering.py);
and a segment trigger's ``segment`` (entry and exit)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.models import Profile, Workspace
from rapport.runtime import Runtime
from tests.campaigns.conftest import call, make_campaign, make_segment, run_worker
from tests.messaging.conftest import make_people
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

STORES = [
    {"id": "st-york", "name": "York Coney Street", "city": "York", "latitude": 53.9583, "longitude": -1.0841},
    {"id": "st-lds", "name": "Leeds Briggate", "city": "Leeds", "lat": 53.7980, "lon": -1.5430,
     "opens_at": "09:00"},
]  # fmt: skip

LIQUID = (
    "C=[{{ computed.ltv }}] S=[{{ segments | join: ',' }}] CUR=[{{ recipient.currency }}] "
    "M=[{{ 5 | money }}] ST=[{{ store.name }}|{{ store.id }}|{{ store.opens_at }}|{{ store.distance_km }}] "
    'P=[{{ catalog["hat"].name }}|{{ catalog["hat"].price }}|{{ catalog["nope"].name }}]'
)


def _text(message: Any) -> str:
    body = message.parsed().get_body(("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())  # (a no-break space becomes a space)


def _setup(runtime: Runtime, tenant: Tenant, client: TestClient) -> int:
    """Two Leeds customers (one placed in Leeds, paying in euros, with a computed ltv), two stores and
    a product; return the Leeds segment's id."""
    placed, _unplaced = make_people(runtime, tenant, 2, extra={"city": "Leeds"})
    with runtime.sessions() as db:
        profile = db.get(Profile, placed)
        assert profile is not None
        profile.traits = {
            **profile.traits, "currency": "EUR", "locale": "de_DE", "latitude": 53.8008, "longitude": -1.5491,
        }  # fmt: skip
        profile.computed = {**(profile.computed or {}), "ltv": 123}
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        workspace.settings = {**(workspace.settings or {}), "stores": STORES}
        db.commit()
    call(client, tenant, "POST", "/api/v1/products/batch", json={"products": [
        {"product_id": "hat", "name": "Bobble hat", "category": "Accessories", "price": 15},
    ]})  # fmt: skip
    return make_segment(client, tenant, "Leeds", 'city = "Leeds"')


def _send(client: TestClient, tenant: Tenant, app: FastAPI, name: str, segment_id: int, variant: Any) -> None:
    campaign = make_campaign(client, tenant, name=name, channel="email", segment_ids=[segment_id],
                             variants=[{"key": "A", **variant}])  # fmt: skip
    call(client, tenant, "POST", f"/api/v1/campaigns/{campaign['id']}/launch")
    run_worker(app)


def test_own_liquid_and_saved_templates_read_the_same_context(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    segment_id = _setup(runtime, tenant, client)
    _send(client, tenant, app, "Own Liquid", segment_id, {"content": {"subject": "own", "text": LIQUID}})
    template = call(client, tenant, "POST", "/api/v1/templates", json={
        "name": "With a block", "channel": "email",
        "content": {"subject": "saved", "text": LIQUID + " B=[{{ blocks.b }}]"},
        "blocks": [{"name": "b", "variants": [{"condition": "ltv > 100", "source": "big"}], "default": "small"}],
    })  # fmt: skip
    _send(client, tenant, app, "Saved", segment_id, {"template_id": template["id"]})
    received = {(m.parsed()["Subject"], m.rcpt_tos[0]): _text(m) for m in sink.wait_for(4)}
    for subject in ("own", "saved"):
        placed = received[(subject, "person0@example.com")]
        assert "C=[123] S=[Leeds] CUR=[EUR] M=[5,00 €]" in placed, placed
        assert "ST=[Leeds Briggate|st-lds|09:00|0.5]" in placed, placed  # 0.46 km from the store
        assert "P=[Bobble hat|15.0|]" in placed, placed
        unplaced = received[(subject, "person1@example.com")]
        assert "C=[] S=[Leeds] CUR=[GBP] M=[£5.00] ST=[|||]" in unplaced, unplaced  # no position, no store
        assert "P=[Bobble hat|15.0|]" in unplaced, unplaced
    assert received[("saved", "person0@example.com")].endswith("B=[big]")
    assert received[("saved", "person1@example.com")].endswith("B=[small]")


def test_segment_entry_and_exit_trigger_with_the_segment_in_the_message(
    runtime: Runtime, tenant: Tenant, client: TestClient, app: FastAPI, sink: SmtpSink, email_channel: object
) -> None:
    make_people(runtime, tenant, 2, extra={"is_vip": False})
    segment_id = make_segment(client, tenant, "VIP", "is_vip = true")
    for kind in ("segment_entry", "segment_exit"):
        campaign = make_campaign(client, tenant, name=kind, kind="triggered", channel="email",
                                 trigger={"type": kind, "segment_id": segment_id},
                                 variants=[{"key": "A", "content": {
                                     "subject": kind, "text": "{{ segment.name }} {{ segment.change }}"}}]),  # fmt: skip
        call(client, tenant, "POST", f"/api/v1/campaigns/{campaign[0]['id']}/launch")

    def identify(vip: bool) -> None:
        response = client.post(
            "/v1/identify", json={"userId": "p1", "traits": {"is_vip": vip}}, headers=tenant.write_headers
        )
        assert response.status_code == 200
        run_worker(app)

    identify(True)
    [entered] = sink.wait_for(1)
    assert (entered.parsed()["Subject"], entered.rcpt_tos, _text(entered)) == (
        "segment_entry", ["person1@example.com"], "VIP entered",
    )  # fmt: skip
    identify(False)
    exited = sink.wait_for(2)[1]
    assert (exited.parsed()["Subject"], exited.rcpt_tos, _text(exited)) == (
        "segment_exit", ["person1@example.com"], "VIP exited",
    )  # fmt: skip
    assert len(sink.messages) == 2  # person0 never entered, so never left
