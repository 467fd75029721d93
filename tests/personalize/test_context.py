"""The render context contract: plain inputs in, documented variables out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from rapport.personalize import (
    KNOWN_VARIABLES,
    ContextInputs,
    Recipient,
    TemplateEngine,
    build_context,
    known_variable_paths,
    validate_template,
)
from rapport.personalize.context import time_of_day

NOW = datetime(2026, 7, 1, 22, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Product:
    id: str
    name: str
    price: float


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    distance_km: float


def _inputs(**overrides: object) -> ContextInputs:
    values: dict[str, object] = {
        "now": NOW,
        "profile": {"first_name": "Ada", "email": "ada@example.com", "city": "London"},
        "profile_id": "p-1",
        "recipient": Recipient(locale="de_DE", timezone="Europe/Berlin", currency="EUR"),
        "computed": {"ltv": 812.5},
        "scores": {"rfm": {"segment": "champion"}},
        "segments": ["vip", "london"],
        "event": {
            "name": "order_completed",
            "properties": {"total": 99},
            "timestamp": "2026-07-01T20:00:00Z",
        },
        "campaign": {"id": "c-1", "name": "Summer", "channel": "email", "variant": "B"},
        "links": {"unsubscribe": "https://r.example/u/T", "preferences": "https://r.example/p/T"},
        "store": Store("s-1", "Mitte", 1.5),
        "catalog": {"sku-1": {"id": "sku-1", "name": "Mug", "price": 9.5}},
        "recommendations": [Product("sku-2", "Cup", 4.0)],
    }
    values.update(overrides)
    return ContextInputs(**values)  # type: ignore[arg-type]


def test_builds_the_documented_variables() -> None:
    ctx = build_context(_inputs())
    assert ctx["profile"] == {"first_name": "Ada", "email": "ada@example.com", "city": "London", "id": "p-1"}
    assert ctx["first_name"] == "Ada"
    assert ctx["email"] == "ada@example.com"
    assert "last_name" not in ctx  # absent stays absent, so `default` applies
    assert ctx["recipient"] == {
        "locale": "de_DE",
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "channel": "email",
        "address": None,
    }
    assert ctx["now"] == NOW and ctx["now"].utcoffset().total_seconds() == 7200
    assert ctx["today"] == date(2026, 7, 2)  # already tomorrow in Berlin
    assert ctx["local_hour"] == 0
    assert ctx["time_of_day"] == "night"
    assert ctx["event"] == {
        "name": "order_completed",
        "timestamp": "2026-07-01T20:00:00Z",
        "properties": {"total": 99},
    }
    assert ctx["campaign"]["variant"] == "B"
    assert ctx["unsubscribe_url"] == "https://r.example/u/T"
    assert ctx["preferences_url"] == "https://r.example/p/T"
    assert "view_online_url" not in ctx
    assert ctx["store"] == {"id": "s-1", "name": "Mitte", "distance_km": 1.5}
    assert ctx["recommendations"] == [{"id": "sku-2", "name": "Cup", "price": 4.0}]
    assert ctx["catalog"]["sku-1"]["name"] == "Mug"
    assert ctx["segments"] == ["vip", "london"]
    assert ctx["scores"]["rfm"]["segment"] == "champion"
    assert ctx["computed"]["ltv"] == 812.5


def test_inputs_are_not_mutated_and_large_inputs_are_not_copied() -> None:
    profile = {"first_name": "Ada"}
    catalog = {"sku-1": {"name": "Mug"}}
    ctx = build_context(_inputs(profile=profile, catalog=catalog))
    assert profile == {"first_name": "Ada"}
    assert ctx["catalog"] is catalog


def test_a_template_reads_every_variable_through_the_engine() -> None:
    source = (
        "{{ first_name }}|{{ profile.city }}|{{ computed.ltv | money }}|{{ scores.rfm.segment }}|"
        "{{ event.properties.total | money }}|{{ campaign.name }}|{{ store.name }}|"
        "{{ recommendations.first.name }}|{{ catalog.sku-1.name }}|{{ today | local_date: 'short' }}|"
        "{{ time_of_day }}|{% if segments contains 'vip' %}vip{% endif %}|{{ unsubscribe_url }}"
    )
    text = TemplateEngine().render(source, build_context(_inputs())).text
    assert text == (
        "Ada|London|812,50\xa0€|champion|99,00\xa0€|Summer|Mitte|Cup|Mug|02.07.26|night|vip|https://r.example/u/T"
    )


def test_an_unknown_timezone_falls_back_to_utc() -> None:
    ctx = build_context(_inputs(recipient=Recipient(timezone="Nowhere/Special")))
    assert ctx["recipient"]["timezone"] == "UTC"
    assert ctx["local_hour"] == 22


def test_a_naive_now_is_utc() -> None:
    ctx = build_context(_inputs(now=datetime(2026, 7, 1, 10, 0), recipient=Recipient(timezone="Asia/Tokyo")))
    assert ctx["local_hour"] == 19


@pytest.mark.parametrize(
    ("hour", "name"),
    [(4, "night"), (5, "morning"), (11, "morning"), (12, "afternoon"), (17, "evening"), (22, "night")],
)
def test_time_of_day(hour: int, name: str) -> None:
    assert time_of_day(hour) == name


def test_known_variables_accept_what_the_builder_produces() -> None:
    ctx = build_context(_inputs())
    roots = {path.split(".")[0] for path in KNOWN_VARIABLES}
    assert set(ctx) <= roots


def test_known_variable_paths_can_be_narrowed() -> None:
    paths = known_variable_paths(traits=["city"], computed=["ltv"])
    assert "profile.city" in paths and "profile.*" not in paths
    assert "computed.ltv" in paths and "computed.*" not in paths
    assert "event.properties.*" in paths


def test_every_known_variable_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "templates.md").read_text(encoding="utf-8")
    for path in KNOWN_VARIABLES:
        root = path.split(".")[0]
        assert f"`{root}" in doc, path


def test_the_documented_example_template_validates_cleanly() -> None:
    source = "Hi {{ first_name | default: 'there' }}, {{ recommendations.first.name }} {{ store.closes_at }}"
    assert validate_template(TemplateEngine(), source).warnings == ()
