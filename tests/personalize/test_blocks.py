"""Content blocks with rules: first matching variant wins, else the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from rapport.personalize import (
    Choice,
    RenderFailed,
    RenderLimits,
    RuleBlock,
    StaticBlock,
    TemplateEngine,
    Variant,
    choose_variant,
    render_blocks,
    render_layout,
)

ENGINE = TemplateEngine()


def segment_predicate(condition: Any, context: Mapping[str, Any]) -> bool:
    """A stand-in for the segment language: ``(path, value)`` is true when the dotted path equals value."""
    path, expected = condition
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return bool(value == expected)


HERO = RuleBlock(
    "hero",
    variants=(
        Variant(("scores.rfm", "champion"), "<h1>Thanks, VIP {{ first_name }}</h1>", name="vip"),
        Variant(("profile.city", "London"), "<h1>Hello London</h1>", name="london"),
        Variant(("scores.rfm", "champion"), "<h1>never shown: an earlier variant matches first</h1>"),
    ),
    default="<h1>Hello {{ first_name | default: 'there' }}</h1>",
)


@pytest.mark.parametrize(
    ("context", "choice", "text"),
    [
        (
            {"first_name": "Ada", "scores": {"rfm": "champion"}, "profile": {"city": "London"}},
            Choice("hero", "vip", 0),
            "<h1>Thanks, VIP Ada</h1>",
        ),
        (
            {"first_name": "Bo", "scores": {"rfm": "at_risk"}, "profile": {"city": "London"}},
            Choice("hero", "london", 1),
            "<h1>Hello London</h1>",
        ),
        (
            {"first_name": "Cy", "profile": {"city": "Leeds"}},
            Choice("hero", "default", None),
            "<h1>Hello Cy</h1>",
        ),
        ({}, Choice("hero", "default", None), "<h1>Hello there</h1>"),
    ],
)
def test_first_match_wins_and_the_default_is_used_otherwise(
    context: dict[str, Any], choice: Choice, text: str
) -> None:
    result = render_blocks(
        ENGINE, ["<html>", HERO, StaticBlock("</html>")], context, predicate=segment_predicate
    )
    assert result.choices == (choice,)
    assert result.text == f"<html>{text}</html>"


def test_conditions_are_tried_in_order_and_stop_at_the_first_match() -> None:
    seen: list[Any] = []

    def predicate(condition: Any, context: Mapping[str, Any]) -> bool:
        seen.append(condition)
        return bool(condition == "b")

    block = RuleBlock("x", variants=(Variant("a", "A"), Variant("b", "B"), Variant("c", "C")), default="D")
    choice, source = choose_variant(block, {}, predicate)
    assert (choice, source) == (Choice("x", "2", 1), "B")
    assert seen == ["a", "b"]


def test_a_block_without_variants_shows_its_default() -> None:
    choice, source = choose_variant(RuleBlock("empty", default="D"), {}, segment_predicate)
    assert (choice.variant, choice.index, source) == ("default", None, "D")


def test_a_failing_condition_fails_the_message_with_the_block_named() -> None:
    def broken(condition: Any, context: Mapping[str, Any]) -> bool:
        raise KeyError("no such trait")

    with pytest.raises(RenderFailed) as caught:
        render_blocks(ENGINE, [HERO], {}, predicate=broken)
    assert caught.value.reason == "condition_error"
    assert "block 'hero' variant vip" in caught.value.message


def test_a_failing_variant_names_its_block_and_line() -> None:
    bad = RuleBlock("offer", variants=(Variant(("vip", True), "ok\n{{ 1 | divided_by: 0 }}"),), default="")
    with pytest.raises(RenderFailed) as caught:
        render_blocks(ENGINE, ["intro", bad], {"vip": True}, predicate=segment_predicate)
    assert caught.value.reason == "template_error"
    assert caught.value.message.startswith("block 'offer' variant 1: ")
    assert caught.value.line == 2


def test_blocks_share_one_output_limit() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_output_chars=1000))
    part = "{% for i in (1..60) %}0123456789{% endfor %}"  # 600 characters, fine alone
    with pytest.raises(RenderFailed) as caught:
        render_blocks(engine, [part, part], {}, predicate=segment_predicate)
    assert caught.value.reason == "output_limit"


def test_blocks_share_one_time_budget() -> None:
    # a generous hard wall-clock cap: on a busy machine it would otherwise stop the render first ("stalled")
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=60, hard_factor=1000))
    slow = "{%for a in (1..10000)%}{%assign x=a%}{%endfor%}" * 20  # ~1/3 of the budget each, or more
    with pytest.raises(RenderFailed) as caught:
        render_blocks(engine, [slow] * 30, {}, predicate=segment_predicate)
    assert caught.value.reason == "time_limit"


def test_a_layout_places_rendered_blocks_without_escaping_them_twice() -> None:
    context = {"first_name": "<Ada>", "scores": {"rfm": "champion"}}
    result = render_layout(
        ENGINE,
        "<body>{{ blocks.hero }}<p>{{ first_name }}</p></body>",
        [HERO],
        context,
        predicate=segment_predicate,
        html=True,
    )
    assert result.text == "<body><h1>Thanks, VIP &lt;Ada&gt;</h1><p>&lt;Ada&gt;</p></body>"
    assert result.choices == (Choice("hero", "vip", 0),)
    assert "blocks" not in context
