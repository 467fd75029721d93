"""Validation on save: syntax errors with line and column, unknown filters/snippets, unknown variables."""

from __future__ import annotations

import pytest

from rapport.personalize import TemplateEngine, known_variable_paths, validate_template
from rapport.personalize.validate import line_col
from tests.personalize.samples import EMAIL_2KB

ENGINE = TemplateEngine(snippets={"footer": "<p>{{ unsubscribe_url }}</p>"})


@pytest.mark.parametrize(
    ("source", "line", "column"),
    [
        # python-liquid points at these itself
        ("Hello\n  {% endif %}", 2, 6),
        ("Hi\n{% frobnicate %}", 2, 4),
        ("Hi\n{{ first_name last_name }}", 2, 15),
        ("Hi\n{{ 'unclosed }}", 2, 4),
        ("{% for x in y %}{% else %}{% else %}{% endfor %}", 1, 30),
        # python-liquid gives no position for these: we find the markup that fails
        ("Hello\n{% if x %}\n  {{ first_name | }}\n{% endif %}", 3, 3),
        ("Hi\n\n{% if a == %}x{% endif %}", 3, 4),
        ("Hi\n{% for p in %}{% endfor %}", 2, 4),
        # an unclosed block points at the tag that opens it
        ("line 1\nline 2\n   {% if vip %}\nHello", 3, 7),
        # a block closed by the wrong end tag: python-liquid points at that end tag
        ("{% for p in recommendations %}{% if p.stock %}x{% endfor %}", 1, 51),
    ],
)
def test_syntax_errors_have_line_and_column(source: str, line: int, column: int) -> None:
    report = validate_template(ENGINE, source)
    assert not report.ok
    (issue,) = report.errors
    assert issue.code == "syntax_error"
    assert issue.severity == "error"
    assert issue.message
    assert (issue.line, issue.column) == (line, column)


def test_an_unclosed_block_says_how_to_close_it() -> None:
    (issue,) = validate_template(ENGINE, "Hi\n{% unless vip %}\nHello").errors
    assert issue.message == "'unless' is never closed: add {% endunless %}"
    assert (issue.line, issue.column) == (2, 4)


def test_a_valid_template_has_no_issues() -> None:
    report = validate_template(ENGINE, EMAIL_2KB)
    assert report.ok
    assert report.errors == ()
    assert report.warnings == ()


def test_unknown_variables_are_warned_with_the_nearest_name() -> None:
    source = (
        "Hi {{ frist_name }},\n"
        "{{ campain.name }} {{ recipient.locle }}\n"
        "{{ unsubscribe_link }} {{ completely_unrelated_thing }}"
    )
    report = validate_template(ENGINE, source)
    assert report.ok  # warnings do not block saving
    found = {(w.message, w.line, w.column, w.suggestion) for w in report.warnings}
    assert found == {
        ("unknown variable 'frist_name'; did you mean 'first_name'?", 1, 7, "first_name"),
        ("unknown variable 'campain.name'; did you mean 'campaign.name'?", 2, 4, "campaign.name"),
        ("unknown variable 'recipient.locle'; did you mean 'recipient.locale'?", 2, 23, "recipient.locale"),
        ("unknown variable 'unsubscribe_link'; did you mean 'unsubscribe_url'?", 3, 4, "unsubscribe_url"),
        ("unknown variable 'completely_unrelated_thing'", 3, 27, None),
    }


def test_each_unknown_variable_is_warned_once_at_its_first_use() -> None:
    report = validate_template(ENGINE, "{{ frist_name }}\n{{ frist_name }}")
    assert [(w.line, w.column) for w in report.warnings] == [(1, 4)]


def test_open_namespaces_loop_variables_and_assigns_are_not_warned() -> None:
    source = (
        "{{ profile.anything }}{{ event.properties.total }}{{ scores.rfm.segment }}{{ computed.ltv }}"
        "{% for p in recommendations %}{{ p.name }}{{ forloop.index }}{% endfor %}"
        "{% assign greeting = 'hi' %}{{ greeting }}{{ first_name.size }}{{ blocks.hero }}"
        "{{ recommendations.first.name }}{{ now }}{{ today }}{{ store.name }}"
    )
    assert validate_template(ENGINE, source).warnings == ()


def test_properties_beyond_a_known_leaf_are_warned() -> None:
    report = validate_template(ENGINE, "{{ campaign.name.fisrt }}")
    assert [(w.message, w.suggestion) for w in report.warnings] == [
        ("unknown variable 'campaign.name.fisrt'; did you mean 'campaign.name'?", "campaign.name")
    ]


def test_known_traits_narrow_the_profile_namespace() -> None:
    known = known_variable_paths(traits=["city", "loyalty_tier"], event_properties=["total"])
    report = validate_template(
        ENGINE,
        "{{ profile.city }} {{ profile.loyalty_teir }} {{ event.properties.totl }} {{ profile.id }}",
        known=known,
    )
    assert [(w.message, w.suggestion) for w in report.warnings] == [
        (
            "unknown variable 'profile.loyalty_teir'; did you mean 'profile.loyalty_tier'?",
            "profile.loyalty_tier",
        ),
        (
            "unknown variable 'event.properties.totl'; did you mean 'event.properties.total'?",
            "event.properties.total",
        ),
    ]


def test_unknown_filters_are_errors_with_a_suggestion() -> None:
    report = validate_template(ENGINE, "Total:\n  {{ total | mony: 'GBP' }}")
    assert not report.ok
    (issue,) = report.errors
    assert (issue.code, issue.line, issue.column, issue.suggestion) == ("unknown_filter", 2, 14, "money")


def test_missing_snippets_are_errors() -> None:
    report = validate_template(ENGINE, "x\n{% render 'fotter' %}\n{% render 'footer' %}")
    assert [(e.code, e.line, e.column, e.suggestion) for e in report.errors] == [
        ("snippet_not_found", 2, 11, "footer")
    ]
    assert validate_template(ENGINE, "{% render 'header' %}", snippets={"header": "h"}).ok


def test_a_too_large_template_is_an_error() -> None:
    report = validate_template(ENGINE, "x" * (ENGINE.limits.max_source_bytes + 1))
    assert [e.code for e in report.errors] == ["source_too_large"]


def test_line_col_is_one_based() -> None:
    assert line_col("ab\ncd", 0) == (1, 1)
    assert line_col("ab\ncd", 3) == (2, 1)
    assert line_col("ab\ncd", 4) == (2, 2)
