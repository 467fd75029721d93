"""The engine: rendering, snippets, the compile cache, sandboxing and the limits of R22."""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest

from rapport.personalize import RenderFailed, RenderLimits, TemplateEngine
from tests.personalize.samples import EMAIL_2KB, sample_context

NESTED_LOOP_BOMB = "{% for a in (1..100000) %}{% for b in (1..100000) %}x{% endfor %}{% endfor %}"


def _fail(engine: TemplateEngine, source: str, context: dict[str, object] | None = None) -> RenderFailed:
    with pytest.raises(RenderFailed) as caught:
        engine.render(source, context or {})
    return caught.value


def _fail_timed(engine: TemplateEngine, source: str) -> tuple[RenderFailed, float]:
    """``_fail`` and the CPU seconds it took, without a full collection of the test process's heap (which
    once landed in such a render under CI: 0.26 s of this thread's time for a 2 ms refusal)."""
    gc.collect()
    gc.disable()
    try:
        started = time.thread_time()
        failure = _fail(engine, source)
        return failure, time.thread_time() - started
    finally:
        gc.enable()


def test_renders_the_sample_email_with_filters_and_loops() -> None:
    text = TemplateEngine().render(EMAIL_2KB, sample_context()).text
    assert "<h1>Hello Ada,</h1>" in text
    assert "in London." in text
    assert "<strong>£1,234.50</strong>" in text
    assert "10 January 2026" in text
    assert text.count("<li>") == 3
    assert "Product 3</a> &mdash; £17.50 (only 3 left)" in text
    assert "Product 4" not in text
    assert "1.2 km away" in text
    assert "Member for 685 days" in text
    assert "Sent 15 Jan 2026, 12:00:00." in text


def test_missing_variables_render_empty() -> None:
    assert TemplateEngine().render("[{{ nope }}][{{ profile.nope.deeper }}]", {"profile": {}}).text == "[][]"


def test_snippets_render_with_arguments_and_can_be_overridden_per_render() -> None:
    engine = TemplateEngine(snippets={"footer": "Bye {{ name }}"})
    assert engine.render("{% render 'footer', name: 'Ada' %}", {}).text == "Bye Ada"
    text = engine.render(
        "{% render 'footer', name: 'Ada' %}", {}, snippets={"footer": "Ciao {{ name }}"}
    ).text
    assert text == "Ciao Ada"
    # the engine's own snippets are untouched by the override
    assert engine.render("{% render 'footer', name: 'Bo' %}", {}).text == "Bye Bo"


def test_snippet_for_binding_uses_the_snippet_name() -> None:
    engine = TemplateEngine(snippets={"product": "<{{ product.name }}>"})
    text = engine.render("{% render 'product' for items %}", {"items": [{"name": "a"}, {"name": "b"}]}).text
    assert text == "<a><b>"


def test_missing_snippet_fails_with_its_own_reason() -> None:
    failure = _fail(TemplateEngine(), "line one\n{% render 'nope' %}")
    assert failure.reason == "snippet_not_found"
    assert failure.line == 2


def test_compile_cache_reuses_the_parse_for_equal_sources() -> None:
    engine = TemplateEngine()
    first = engine.compile("Hi {{ a }}")
    second = engine.compile("".join(["Hi ", "{{ a }}"]))  # equal text, different string object
    assert first.bound is second.bound
    assert engine.compile("Hi {{ a }}", html=True).bound is not first.bound


def test_compile_cache_is_bounded() -> None:
    engine = TemplateEngine(cache_size=3)
    first = engine.compile("0 {{ a }}")
    for i in range(1, 5):
        engine.compile(f"{i} {{{{ a }}}}")
    assert engine.compile("0 {{ a }}").bound is not first.bound


def test_compiled_templates_render_without_reparsing() -> None:
    engine = TemplateEngine()
    compiled = engine.compile("Hi {{ first_name }}")
    assert engine.render(compiled, {"first_name": "Ada"}).text == "Hi Ada"
    assert engine.render(compiled, {"first_name": "Bo"}).text == "Hi Bo"


def test_html_mode_escapes_variables_but_not_markup() -> None:
    engine = TemplateEngine()
    context = {"first_name": "<script>x</script>"}
    assert engine.render("<b>{{ first_name }}</b>", context, html=True).text == (
        "<b>&lt;script&gt;x&lt;/script&gt;</b>"
    )
    assert engine.render("<b>{{ first_name }}</b>", context).text == "<b><script>x</script></b>"


@dataclass
class _Person:
    name: str


@pytest.mark.parametrize(
    "source",
    [
        "{{ profile.__class__ }}",
        "{{ profile['__class__'] }}",
        "{{ profile.__class__.__mro__ }}",
        "{{ person.name }}",
        "{{ person.__dict__ }}",
        "{{ text.upper }}",
        "{{ text.__len__ }}",
        "{{ number.__class__.__subclasses__ }}",
    ],
)
def test_python_internals_are_not_reachable(source: str) -> None:
    context = {"profile": {"first_name": "Ada"}, "person": _Person("Ada"), "text": "abc", "number": 3}
    assert TemplateEngine().render(source, context).text == ""


def test_the_nested_loop_bomb_is_refused_at_once() -> None:
    failure, spent = _fail_timed(TemplateEngine(), NESTED_LOOP_BOMB)
    assert failure.reason == "loop_limit"
    assert failure.line == 1
    assert spent < 0.2


def test_sequential_loops_under_the_loop_limit_are_stopped_by_the_time_budget() -> None:
    limits = RenderLimits(max_render_ms=100)
    engine = TemplateEngine(limits=limits)
    # each loop is within the iteration limit, and the body writes nothing: only the clock can stop it
    source = "{%for a in (1..10000)%}{%assign x=a%}{%endfor%}" * 2000
    compiled = engine.compile(source)
    cpu_started, wall_started = time.thread_time(), time.perf_counter()
    with pytest.raises(RenderFailed) as caught:
        engine.render(compiled, {})
    # the CPU budget stops it; on a machine too busy to give it 1/5 of a core the hard cap does ("stalled")
    assert caught.value.reason in {"time_limit", "stalled"}
    # stopped within the CPU budget (plus one check interval), and under the hard wall-clock cap
    assert time.thread_time() - cpu_started < 0.1 + 0.1
    assert time.perf_counter() - wall_started < 0.1 * limits.hard_factor + 1.0


def test_recursive_snippets_are_stopped() -> None:
    engine = TemplateEngine(snippets={"again": "{% render 'again' %}{% render 'again' %}"})
    failure = _fail(engine, "{% render 'again' %}")
    assert failure.reason in {"depth_limit", "time_limit"}


def test_output_bomb_is_stopped_at_the_output_limit() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_output_chars=10_000))
    failure, spent = _fail_timed(engine, "{% for a in (1..5000) %}0123456789{% endfor %}")
    assert failure.reason == "output_limit"
    assert spent < 0.2


def test_output_just_under_the_limit_is_fine() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_output_chars=10_000))
    assert len(engine.render("{% for a in (1..1000) %}0123456789{% endfor %}", {}).text) == 10_000


def test_captured_output_counts_towards_the_limit() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_output_chars=10_000))
    failure = _fail(engine, "{% capture big %}{% for a in (1..5000) %}0123456789{% endfor %}{% endcapture %}")
    assert failure.reason == "output_limit"


def test_string_doubling_is_stopped() -> None:
    source = "{% assign s = 'xxxxxxxxxx' %}" + "{% assign s = s | append: s %}" * 40
    failure = _fail(TemplateEngine(), source)
    assert failure.reason in {"output_limit", "memory_limit"}


def test_a_huge_range_fed_to_a_filter_is_refused() -> None:
    engine = TemplateEngine()
    engine.render("{{ (1..3) | join: ',' }}", {})  # a first render imports and compiles: not what is timed
    failure, spent = _fail_timed(engine, "{{ (1..100000000) | join: ',' }}")
    assert failure.reason == "output_limit"
    assert spent < 0.2  # refused before the range is built (100 million numbers would take seconds)


def test_template_source_size_is_capped() -> None:
    engine = TemplateEngine(limits=RenderLimits(max_source_bytes=1000))
    failure = _fail(engine, "x" * 1001)
    assert failure.reason == "source_too_large"
    assert engine.render("x" * 1000, {}).text == "x" * 1000


def test_block_nesting_is_capped() -> None:
    source = "{% if true %}" * 40 + "x" + "{% endif %}" * 40
    assert _fail(TemplateEngine(), source).reason == "depth_limit"


@pytest.mark.parametrize(
    ("source", "reason", "line"),
    [
        ("ok\n{% if %}", "syntax_error", 2),
        ("ok\n\n{{ x | no_such_filter }}", "unknown_filter", 3),
        ("{{ 1 | divided_by: 0 }}", "template_error", 1),
        ("{% for x in (1..3) %}{{ x | money: 'XYZZY' }}{% endfor %}", "template_error", 1),
    ],
)
def test_a_failing_render_raises_render_failed_with_a_reason(source: str, reason: str, line: int) -> None:
    failure = _fail(TemplateEngine(), source)
    assert failure.reason == reason
    assert failure.message
    assert failure.line == line
    assert failure.to_dict()["error"]["code"] == "render_failed"
    assert failure.status_code == 422


def test_one_bad_template_does_not_disturb_other_renders_on_other_threads() -> None:
    # a generous hard wall-clock cap: the good thread may wait for the GIL on a busy machine
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=50, hard_factor=1000))
    good = engine.compile("Hi {{ first_name }}")
    results: list[str] = []
    errors: list[str] = []

    def render_good() -> None:
        for _ in range(200):
            results.append(engine.render(good, {"first_name": "Ada"}).text)

    def render_bad() -> None:
        for _ in range(3):
            try:
                engine.render("{% for a in (1..10000) %}{% assign x = a %}{% endfor %}" * 500, {})
            except RenderFailed as failure:
                errors.append(failure.reason)

    threads = [threading.Thread(target=render_good), threading.Thread(target=render_bad)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Hi Ada"] * 200
    assert errors == ["time_limit"] * 3


def _big_string_source(doublings: int) -> str:
    return "{% assign big = 'x' %}" + "{% assign big = big | append: big %}" * doublings


def test_output_bomb_without_loops_is_stopped() -> None:
    # a 262,144-character variable written 10 times: no loop, every write counts
    source = _big_string_source(18) + "{{ big }}" * 10
    assert _fail(TemplateEngine(), source).reason == "output_limit"


def test_filter_work_without_loops_or_output_is_stopped_by_the_time_budget() -> None:
    source = _big_string_source(18) + "{%assign y=big|replace:'x','y'%}" * 2500
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=100))
    compiled = engine.compile(source)
    cpu_started = time.thread_time()
    assert _fail(engine, compiled.source).reason == "time_limit"
    assert time.thread_time() - cpu_started < 0.1 + 0.1


@pytest.mark.parametrize(
    "source",
    [
        "{% tablerow a in (1..100000) %}{% tablerow b in (1..100000) %}x{% endtablerow %}{% endtablerow %}",
        "{% liquid\nfor a in (1..100000)\n  echo 'x'\nendfor %}",
        "{% for a in (1..5000) %}{% render 'loop' %}{% endfor %}",
    ],
)
def test_loop_limits_hold_in_tablerow_liquid_tags_and_snippets(source: str) -> None:
    engine = TemplateEngine(snippets={"loop": "{% for b in (1..5000) %}y{% endfor %}"})
    assert _fail(engine, source).reason == "loop_limit"


def test_recursive_include_is_stopped() -> None:
    engine = TemplateEngine(snippets={"me": "{% include 'me' %}"})
    assert _fail(engine, "{% include 'me' %}").reason == "depth_limit"


@pytest.mark.parametrize(
    "source",
    [
        "{% for a in (1..5000) %}0123456789{% endfor %}",
        "{% for a in (1..5000) %}{{ '0123456789' }}{% endfor %}",
        "{% for a in (1..5000) %}{% echo '0123456789' %}{% endfor %}",
        "{% for a in (1..5000) %}{% cycle '0123456789', 'abcdefghij' %}{% endfor %}",
        "{% tablerow a in (1..5000) %}0{% endtablerow %}",
        "{% for a in (1..5000) %}{% increment n %}{% endfor %}",
        "{% for a in (1..5000) %}{% ifchanged %}{{ a }}--------{% endifchanged %}{% endfor %}",
        "{% for a in (1..5000) %}{% render 'ten' %}{% endfor %}",
    ],
)
def test_every_way_of_writing_respects_the_output_limit(source: str) -> None:
    engine = TemplateEngine(limits=RenderLimits(max_output_chars=10_000), snippets={"ten": "0123456789"})
    assert _fail(engine, source).reason == "output_limit"


def test_parsing_a_new_template_is_not_charged_to_a_shared_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # the parts of one message share a budget; parsing and compiling a template the engine has not seen
    # happen once per template, not per message, and must not use up the message's render time
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=20, hard_factor=1000))
    real = engine._text_env.from_string

    def slow_parse(source: str, **kwargs: Any) -> Any:
        spent = time.thread_time() + 0.05
        while time.thread_time() < spent:  # 50 ms of CPU, more than the whole 20 ms budget
            pass
        return real(source, **kwargs)

    monkeypatch.setattr(engine._text_env, "from_string", slow_parse)
    budget = engine.new_budget()
    assert engine.render("Hi {{ name }}", {"name": "Ada"}, budget=budget).text == "Hi Ada"
    assert engine.render("Bye {{ name }}", {"name": "Ada"}, budget=budget).text == "Bye Ada"
