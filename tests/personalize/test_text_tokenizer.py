"""The fast tokenizer of ``html_to_text`` gives exactly what the stdlib ``HTMLParser`` path gives."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rapport.personalize import TemplateEngine
from rapport.personalize.text import html_to_text, html_to_text_reference
from tests.personalize.samples import EMAIL_2KB, sample_context

BENCH_TEMPLATE = Path(__file__).parents[2] / "bench" / "workloads" / "templates" / "email.liquid"

CASES = [
    "<p>Hello <b>Ann</b>,</p><p>Bye</p>",
    "<h1>Title</h1><h2>Sub &amp; more</h2><p>x</p>",
    '<a href="https://x.example/?a=1&amp;b=2">Shop</a> <a href="#top">top</a> <a href="mailto:a@b.c">a@b.c</a>',
    '<a href="https://x.example"><img src="i.png" alt="Logo"></a><a href="https://y.example"></a>',
    "<ul><li>one</li><li>two<ol><li>a</li><li>b</li></ol></li></ul>",
    "<table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>",
    "<pre>  keep\n   this  </pre><hr/><br>line<br/>next",
    "<style>p { color: red } a < b</style><script>if (a < b) { x = '</p>' }</script><p>after</p>",
    "<!-- a comment <p>not this</p> --><p>this</p><!doctype html><?xml version='1.0'?>",
    "<P CLASS='x'>Upper</P><DIV>case</DIV>",
    "a < b and c > d & e &lt; f &#39;g&#39; &nbsp;h",
    '<p title="a > b">quoted > in attribute</p>',
    "<head><title>T</title></head><body><p>b</p></body>",
    "<p>unclosed <b>bold",
    "<a href='javascript:alert(1)'>js</a><a href=https://bare.example>bare</a>",
]


def test_known_cases_match_the_reference() -> None:
    for html in CASES:
        assert html_to_text(html) == html_to_text_reference(html), html


def test_rendered_emails_match_the_reference() -> None:
    engine = TemplateEngine()
    for source in (EMAIL_2KB, BENCH_TEMPLATE.read_text(encoding="utf-8")):
        html = engine.render(source, sample_context(), html=True).text
        assert html_to_text(html) == html_to_text_reference(html)
        assert html_to_text(source) == html_to_text_reference(source)


_PIECES = st.sampled_from(
    ["<p>", "</p>", "<h1>", "</h1>", "<h2>", "</h2>", "<br>", "<hr>", "<ul>", "</ul>", "<ol>", "</ol>",
     "<li>", "</li>", "<table>", "<tr>", "<td>", "</td>", "</tr>", "</table>", "<pre>", "</pre>",
     '<a href="https://e.example/x">', '<a href="#">', "</a>", '<img alt="pic">', "<div>", "</div>",
     "<b>", "</b>", "&amp;", "&mdash;", " ", "  ", "\n", "Hello", "world", "a < b", "<!-- c -->", ">"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_generated_documents_match_the_reference(pieces: list[str]) -> None:
    html = "".join(pieces)
    assert html_to_text(html) == html_to_text_reference(html)
