"""Properties over generated input: nothing a marketer types can crash the caller (R22)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rapport.personalize import RenderFailed, RenderLimits, TemplateEngine, html_to_text, validate_template
from tests.personalize.samples import sample_context

ENGINE = TemplateEngine(
    limits=RenderLimits(max_render_ms=50, max_output_chars=20_000),
    snippets={"footer": "<p>{{ unsubscribe_url }}</p>", "self": "{% render 'self' %}"},
)
FRAGMENTS = [
    "{{ first_name }}",
    "{{ profile.city | titlecase }}",
    "{{ event.properties.total | money: 'GBP' }}",
    "{{ now | local_date: 'long' }}",
    "{{ x | divided_by: 0 }}",
    "{{ (1..100000) | join }}",
    "{{ a | nofilter }}",
    "{{ profile.__class__ }}",
    "{% if first_name %}",
    "{% elsif x %}",
    "{% else %}",
    "{% endif %}",
    "{% for p in recommendations %}",
    "{% for i in (1..200) %}",
    "{% endfor %}",
    "{% break %}",
    "{% assign s = s | append: 'xxxxxxxxxx' %}",
    "{% capture c %}",
    "{% endcapture %}",
    "{% render 'footer' %}",
    "{% render 'self' %}",
    "{% render 'missing' %}",
    "{% cycle 'a', 'b' %}",
    "{% case x %}{% when 1 %}",
    "{% endcase %}",
    "{% raw %}{{ }}{% endraw %}",
    "{{",
    "}}",
    "{%",
    "%}",
    "<p>",
    "</p>",
    "<a href='{{ unsubscribe_url }}'>",
    "</a>",
    "text ",
    "\n",
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25), st.booleans())
def test_any_template_renders_or_fails_with_render_failed(fragments: list[str], html: bool) -> None:
    source = "".join(fragments)
    try:
        text = ENGINE.render(source, sample_context(), html=html).text
    except RenderFailed as failure:
        assert failure.reason
        assert failure.message
        return
    assert len(text) <= 20_000


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_renders_or_fails_with_render_failed(source: str) -> None:
    try:
        ENGINE.render(source, {})
    except RenderFailed as failure:
        assert failure.reason


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25))
def test_validation_never_raises_and_errors_have_positions_or_reasons(fragments: list[str]) -> None:
    source = "".join(fragments)
    report = validate_template(ENGINE, source)
    for issue in report.errors + report.warnings:
        assert issue.code and issue.message
        if issue.line is not None:
            assert 1 <= issue.line <= source.count("\n") + 1
            assert issue.column is not None and issue.column >= 1


HTML_PIECES = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<br>",
        "<ul>",
        "<li>",
        "</li>",
        "</ul>",
        "<ol>",
        "</ol>",
        "<h1>",
        "</h1>",
        "<h2>",
        "</h2>",
        "<a href='https://e.x'>",
        "<a>",
        "</a>",
        "<script>",
        "</script>",
        "<style>",
        "</style>",
        "<pre>",
        "</pre>",
        "<table>",
        "<tr>",
        "<td>",
        "</td>",
        "</tr>",
        "</table>",
        "<hr>",
        "&amp;",
        "&nbsp;",
        "&#x27;",
        "<!-- c -->",
        "<",
        ">",
        " ",
        "\n",
        "word",
        "ünïcode",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HTML_PIECES, max_size=40))
def test_html_to_text_output_is_tidy(pieces: list[str]) -> None:
    text = html_to_text("".join(pieces))
    assert text == "" or (text.endswith("\n") and not text.endswith("\n\n"))
    assert "\n\n\n" not in text
    assert all(line == line.rstrip() for line in text.split("\n"))
