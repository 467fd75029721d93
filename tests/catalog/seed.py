"""Put the hand-built shop (or a generated one) into a real database: products, profiles, purchase events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from rapport.catalog import service
from rapport.catalog.recommend import Item, Purchase
from rapport.catalog.validation import ProductFields
from rapport.models import Event, Profile
from rapport.models.event import PROCESSED
from rapport.runtime import Runtime


def seed_products(runtime: Runtime, workspace_id: int, items: Sequence[Item], now: datetime) -> None:
    """Store ``items`` in the workspace's catalogue."""
    rows = [
        ProductFields(
            product_id=it.product_id,
            name=it.name,
            category=it.category,
            price=it.price,
            currency=it.currency,
            url=it.url,
            image_url=it.image_url,
            stock=it.stock,
        )
        for it in items
    ]
    with runtime.sessions() as db:
        service.upsert_valid(db, workspace_id=workspace_id, rows=rows, now=now)
        db.commit()


def seed_profiles(
    runtime: Runtime, workspace_id: int, count: int, computed: dict[int, dict[str, Any]] | None = None
) -> list[int]:
    """Create ``count`` profiles; returns their ids (``computed`` by 0-based position)."""
    computed = computed or {}
    with runtime.sessions() as db:
        profiles = [Profile(workspace_id=workspace_id, computed=computed.get(i, {})) for i in range(count)]
        db.add_all(profiles)
        db.commit()
        return [p.id for p in profiles]


def seed_purchases(
    runtime: Runtime, workspace_id: int, purchases: Sequence[Purchase], *, event: str = "order_completed"
) -> None:
    """Store each purchase as a processed ``order_completed`` with a Segment-style ``products`` list."""
    rows = [
        {
            "workspace_id": workspace_id,
            "message_id": uuid.uuid4().hex,
            "type": "track",
            "event": event,
            "profile_id": p.profile_id,
            "timestamp": p.at,
            "received_at": p.at,
            "properties": {
                "order_id": f"o{n}",
                "total": 10.0,
                "products": [{"product_id": pid, "quantity": 1} for pid in p.product_ids],
            },
            "traits": {},
            "context": {},
            "extra": {},
            "channel": "web",
            "source": "api",
            "state": PROCESSED,
        }
        for n, p in enumerate(purchases)
    ]
    with runtime.sessions() as db:
        for i in range(0, len(rows), 500):
            db.execute(insert(Event), rows[i : i + 500])
        db.commit()
