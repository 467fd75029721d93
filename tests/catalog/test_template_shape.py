"""Recommendations as the Liquid templates see them: the documented loop renders names and prices."""

from __future__ import annotations

from rapport.catalog.recommend import BOUGHT_TOGETHER, build_model, recommend
from rapport.personalize.engine import TemplateEngine
from tests.catalog.dataset import ITEMS, NOW, purchases

LOOP = "{% for p in recommendations limit: 3 %}{{ p.name }} {{ p.price | money }};{% endfor %}"


def _recommendations(profile_id: int, limit: int = 4) -> list[dict[str, object]]:
    model = build_model(purchases(), ITEMS, now=NOW)
    return [
        model.items[i].to_dict(reason)
        for i, reason in recommend(model, [profile_id], limit=limit)[profile_id]
    ]


def test_the_documented_loop_renders_the_first_three() -> None:
    engine = TemplateEngine()
    context = {"recommendations": _recommendations(5), "recipient": {"locale": "en_GB"}}
    assert engine.render(LOOP, context).text == "Cup £4.00;Bowl £12.50;Dish £20.00;"


def test_currency_locale_links_and_an_unknown_price() -> None:
    engine = TemplateEngine()
    recs = _recommendations(4)  # A, C (bought together), then E priced in EUR, F
    assert [r["product_id"] for r in recs] == ["A", "C", "E", "F"]
    recs[1] = {**recs[1], "price": None}
    source = (
        "{% for p in recommendations %}{% if p.reason == 'bought_together' %}*{% endif %}"
        '<a href="{{ p.url }}">{{ p.name }}</a> {{ p.price | money: p.currency | default: "ask" }}|{% endfor %}'
    )
    html = engine.render(source, {"recommendations": recs, "recipient": {"locale": "fr_FR"}}, html=True).text
    assert html == (
        '*<a href="https://shop.test/a">Apron</a> 10,00\u00a0£GB|*<a href="">Cup</a> ask|'
        '<a href="">Espadrilles</a> 35,00\u00a0€|<a href="">Flip-flops</a> 9,00\u00a0£GB|'
    )
    assert recs[0]["reason"] == BOUGHT_TOGETHER


def test_no_recommendations_render_nothing() -> None:
    assert TemplateEngine().render(LOOP, {"recommendations": []}).text == ""
