"""Rendering every part of a message at once: one budget, one-line headers, a generated text part."""

from __future__ import annotations

import pytest

from rapport.personalize import (
    RenderFailed,
    RenderLimits,
    TemplateEngine,
    html_to_text,
    render_parts,
    single_line,
)
from rapport.personalize.text import text_template_from_html
from tests.personalize.samples import EMAIL_2KB, sample_context

ENGINE = TemplateEngine(snippets={"sig": "<p>{{ name }}</p>"})


def test_an_email_gets_its_text_part_from_the_html() -> None:
    parts = render_parts(
        ENGINE, {"subject": "Picks for {{ first_name }}", "html": EMAIL_2KB}, sample_context()
    )
    assert parts["subject"] == "Picks for Ada"
    assert parts["html"].startswith("<!doctype html>")
    assert parts["text"].startswith("Hello Ada,\n")


def test_a_written_text_part_is_kept() -> None:
    parts = render_parts(ENGINE, {"html": "<p>Hi</p>", "text": "Hi {{ first_name }}"}, {"first_name": "Ada"})
    assert parts["text"] == "Hi Ada"


def test_a_blank_text_part_is_replaced() -> None:
    parts = render_parts(ENGINE, {"html": "<p>Hi</p>", "text": "{{ nothing }}  \n"}, {})
    assert parts["text"] == "Hi\n"


def test_personal_data_cannot_break_a_header_line() -> None:
    context = {"first_name": "x\r\nBcc: evil@example.com\u2028\tz"}
    parts = render_parts(ENGINE, {"subject": "Hi {{ first_name }}", "preheader": "{{ first_name }}"}, context)
    assert parts["subject"] == "Hi x Bcc: evil@example.com z"
    assert parts["preheader"] == "x Bcc: evil@example.com z"


def test_only_the_html_part_is_escaped_and_snippets_follow_the_part() -> None:
    context = {"name": "<Ada & Bo>"}
    parts = render_parts(
        ENGINE,
        {"subject": "{{ name }}", "html": "{% render 'sig', name: name %}", "sms": "{{ name }}"},
        context,
    )
    assert parts["subject"] == "<Ada & Bo>"
    assert parts["sms"] == "<Ada & Bo>"
    assert parts["html"] == "<p>&lt;Ada &amp; Bo&gt;</p>"


def test_a_failing_part_is_named() -> None:
    with pytest.raises(RenderFailed) as caught:
        render_parts(ENGINE, {"subject": "ok", "html": "<p>\n{{ 1 | divided_by: 0 }}</p>"}, {})
    assert caught.value.message.startswith("html: ")
    assert (caught.value.reason, caught.value.line) == ("template_error", 2)


def test_parts_share_one_time_budget() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=60))
    slow = "{%for a in (1..10000)%}{%assign x=a%}{%endfor%}" * 20
    with pytest.raises(RenderFailed) as caught:
        render_parts(engine, {f"part{i}": slow for i in range(30)}, {})
    assert caught.value.reason == "time_limit"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("a\r\nb", "a b"), ("  a   b  ", "a b"), ("a\x00b", "a b"), ("\t", ""), ("naïve café", "naïve café")],
)
def test_single_line(text: str, expected: str) -> None:
    assert single_line(text) == expected


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"scores": {"rfm": {"segment": "at_risk"}}, "store": None, "first_name": "<Bo & Co>"},
        {"recommendations": []},
        {"recommendations": [{"name": "Solo", "url": "https://shop.example/solo", "price": 1, "stock": 9}]},
    ],
)
def test_the_generated_text_equals_converting_the_rendered_html(changes: dict[str, object]) -> None:
    context = sample_context() | changes
    parts = render_parts(ENGINE, {"html": EMAIL_2KB}, context)
    assert parts["text"] == html_to_text(parts["html"])


def test_snippets_in_the_html_are_converted_for_the_text_part() -> None:
    engine = TemplateEngine(snippets={"footer": "<p>Bye <a href='{{ url }}'>now</a></p><ul><li>x</li></ul>"})
    parts = render_parts(
        engine, {"html": "<h1>Hi</h1>{% render 'footer', url: link %}"}, {"link": "https://e.x"}
    )
    assert parts["text"] == "Hi\n==\n\nBye now (https://e.x)\n\n- x\n"
    assert parts["text"] == html_to_text(parts["html"])


def test_a_template_that_does_not_convert_falls_back_to_the_rendered_html() -> None:
    # the {% if %} sits in an attribute (dropped from text) while its {% endif %} is in the body
    html = '<p class="{% if vip %}gold">Dear VIP</p><p class="x{% endif %}">Hello {{ name }}</p>'
    parts = render_parts(ENGINE, {"html": html}, {"vip": True, "name": "Ada"})
    assert parts["text"] == "Dear VIP\n\nHello Ada\n"


def test_text_template_from_html_keeps_liquid_and_shields_it_from_the_parser() -> None:
    source = "<ul>\n{% for p in items %}\n<li>{{ p }}{% if p.size < 3 %} (short){% endif %}</li>\n{% endfor %}\n</ul>"
    assert text_template_from_html(source) == (
        "{% for p in items %}- {{ p }}{% if p.size < 3 %} (short){% endif %}\n{% endfor %}"
    )
