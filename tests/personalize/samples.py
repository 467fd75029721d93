"""Sample templates and contexts shared by the personalisation tests (and usable by benchmark B7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

EMAIL_2KB = """<!doctype html>
<html><head><meta charset="utf-8"><title>{{ campaign.name }}</title></head>
<body>
<h1>Hello {{ first_name | default: "there" }},</h1>
<p>Thanks for shopping with us{% if profile.city %} in {{ profile.city | titlecase }}{% endif %}.
Your last order on {{ event.properties.order_date | local_date: "long" }} came to
<strong>{{ event.properties.total | money: "GBP" }}</strong>.</p>
{% if scores.rfm.segment == "champion" %}
<p>As one of our best customers you get <b>15% off</b> your next order with code VIP15.</p>
{% elsif scores.rfm.segment == "at_risk" %}
<p>We miss you! Here is <b>10% off</b> with code COMEBACK10.</p>
{% else %}
<p>Here is something you might like.</p>
{% endif %}
<p style="font-size:14px;color:#333333">Free delivery on orders over {{ 50 | money: "GBP" }} until
{{ event.properties.order_date | local_date: "d MMMM" }}, and free returns within 30 days of delivery.</p>
<h2>Picked for you</h2>
<ul>
{% for p in recommendations limit: 3 %}
  <li><a href="{{ p.url }}">{{ p.name }}</a> &mdash; {{ p.price | money: "GBP" }}{% if p.stock < 5 %} (only {{ p.stock }} left){% endif %}</li>
{% endfor %}
</ul>
{% if store %}
<p>Your nearest store is <b>{{ store.name }}</b>, {{ store.address }}, {{ store.distance_km | round: 1 }} km away.
Open today until {{ store.closes_at }}.</p>
{% endif %}
<p>Your points balance: {{ profile.points | default: 0 }}. Member for {{ profile.signup_date | days_since }} days.</p>
<table role="presentation" width="100%"><tr>
<td style="padding:16px;font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#333333;line-height:20px">
You are receiving this email because you subscribed to offers from Example Shop Ltd, 1 High Street,
London EC1A 1BB. We send at most two emails a week and never share your address with third parties.
</td></tr></table>
<p style="font-size:12px;color:#777777">Sent {{ now | local_datetime: "medium" }}.
<a href="{{ preferences_url }}">Manage preferences</a> &middot; <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>
"""


def sample_context() -> dict[str, Any]:
    """A realistic render context for ``EMAIL_2KB``."""
    products = [
        {
            "id": f"p{i}",
            "name": f"Product {i}",
            "price": 10 + i * 2.5,
            "url": f"https://shop.example/p/{i}",
            "stock": i,
        }
        for i in range(1, 6)
    ]
    return {
        "first_name": "Ada",
        "profile": {"first_name": "Ada", "city": "LONDON", "points": 420, "signup_date": "2024-03-01"},
        "scores": {"rfm": {"segment": "champion"}},
        "event": {
            "name": "order_completed",
            "properties": {"order_date": "2026-01-10T14:00:00+00:00", "total": 1234.5},
        },
        "campaign": {"id": "c1", "name": "January picks"},
        "recommendations": products,
        "store": {
            "name": "Oxford Street",
            "address": "300 Oxford St",
            "distance_km": 1.234,
            "closes_at": "20:00",
        },
        "recipient": {"locale": "en_GB", "timezone": "Europe/London", "currency": "GBP"},
        "now": datetime(2026, 1, 15, 12, 0, tzinfo=UTC),
        "unsubscribe_url": "https://r.example/u/TOKEN",
        "preferences_url": "https://r.example/p/TOKEN",
    }
