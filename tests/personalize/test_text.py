"""The plain-text part generated from HTML."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.personalize import TemplateEngine, html_to_text
from rapport.personalize.text import (
    fit_underlines,
    fit_underlines_reference,
    tidy_text,
    tidy_text_reference,
)
from tests.personalize.samples import EMAIL_2KB, sample_context


def test_a_whole_email_becomes_readable_text() -> None:
    html = """<html><head><title>Subject</title><style>p { color: red }</style></head><body>
    <h1>Hello   Ada &amp; co</h1>
    <p>Thanks for <b>shopping</b>   with us.<br>See <a href="https://x.example/a">our offers</a>
    or <a href="https://x.example/b">https://x.example/b</a>.</p>
    <script>alert("no")</script>
    <h2>Picks</h2>
    <ul><li>One &mdash; &pound;5</li><li>Two<ul><li>Nested</li></ul></li></ul>
    <ol><li>First</li><li>Second</li></ol>
    <h3>Small heading</h3>
    <p><a href="https://x.example/c"><img src="i.png" alt="Shop now"></a>
    <a href="#top">Top</a> <a href="mailto:help@x.example">Email us</a></p>
    <table><tr><td>A</td><td>B</td></tr><tr><td>C</td><td>D</td></tr></table>
    <hr><pre>  keep
   this</pre>
    <div>Footer &lt;text&gt;</div>
    </body></html>"""
    assert html_to_text(html) == (
        "Hello Ada & co\n"
        "==============\n"
        "\n"
        "Thanks for shopping with us.\n"
        "See our offers (https://x.example/a) or https://x.example/b.\n"
        "\n"
        "Picks\n"
        "-----\n"
        "\n"
        "- One — £5\n"
        "- Two\n"
        "  - Nested\n"
        "\n"
        "1. First\n"
        "2. Second\n"
        "\n"
        "Small heading\n"
        "\n"
        "Shop now (https://x.example/c) Top Email us (help@x.example)\n"
        "\n"
        "A  B\n"
        "C  D\n"
        "\n"
        "--------------------\n"
        "\n"
        "  keep\n"
        "   this\n"
        "\n"
        "Footer <text>\n"
    )


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>one</p><p>two</p>", "one\n\ntwo\n"),
        ("line<br>break<br/>again", "line\nbreak\nagain\n"),
        ("<a href='https://e.x/'></a>", "https://e.x/\n"),
        ("<p>go <a href='https://e.x/'>  </a></p>", "go https://e.x/\n"),
        ("<a href='javascript:alert(1)'>click</a>", "click\n"),
        ("<a>no href</a>", "no href\n"),
        ("<style>.a{}</style><script>x()</script><!-- note -->visible", "visible\n"),
        ("&eacute;t&eacute; &#8364;5 &nbsp;x", "été €5 \xa0x\n"),
        ("<div>a</div><div>b</div>", "a\nb\n"),
        ("   ", ""),
        ("", ""),
        ("plain text, no tags", "plain text, no tags\n"),
        ("<p>unclosed <b>tags", "unclosed tags\n"),
    ],
)
def test_rules(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_the_sample_email_renders_to_text_with_its_links() -> None:
    html = TemplateEngine().render(EMAIL_2KB, sample_context(), html=True).text
    text = html_to_text(html)
    assert text.startswith("Hello Ada,\n==========\n\nThanks for shopping with us in London.")
    assert "- Product 1 (https://shop.example/p/1) — £12.50 (only 1 left)\n" in text
    assert "Manage preferences (https://r.example/p/TOKEN) · Unsubscribe (https://r.example/u/TOKEN)" in text
    assert "<" not in text
    assert "January picks" not in text  # the <title> is not body text


_TEXT_PIECES = [*"ab x", " ", "\t", "\r", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u2000", "\u2028", "\u3000",
                "\n", "\n\n\n", "===", "---", "=", "-", "\n===", "\n---\n", "Title"]  # fmt: skip


@given(st.lists(st.sampled_from(_TEXT_PIECES), max_size=30).map("".join))
@settings(max_examples=500)
def test_tidying_line_by_line_is_what_the_regular_expressions_did(text: str) -> None:
    assert tidy_text(text) == tidy_text_reference(text)
    assert fit_underlines(text) == fit_underlines_reference(text)
