"""Identity rules (pure): normalisation, junk values, merge rules, suppression hashes."""

from __future__ import annotations

import pytest

from rapport.collect import identity as ident

RULES = ident.IdentityRules(default_region="GB")


def test_email_is_trimmed_and_lowercased_but_gmail_dots_are_kept() -> None:
    assert ident.normalize(ident.EMAIL, "  Ann.Lee+News@GMail.com ", RULES) == "ann.lee+news@gmail.com"
    assert ident.normalize(ident.EMAIL, "annlee@gmail.com", RULES) != ident.normalize(
        ident.EMAIL, "ann.lee@gmail.com", RULES
    )
    assert ident.normalize(ident.EMAIL, "mailto:X@Y.io", RULES) == "x@y.io"


@pytest.mark.parametrize("raw", ["not-an-email", "a@b", "a b@c.com", "@c.com", "x@@y.com"])
def test_malformed_email_is_refused(raw: str) -> None:
    with pytest.raises(ident.InvalidIdentifier):
        ident.normalize(ident.EMAIL, raw, RULES)


def test_phone_uses_the_workspace_region_for_national_numbers() -> None:
    assert ident.normalize(ident.PHONE, "07911 123456", RULES) == "+447911123456"
    assert ident.normalize(ident.PHONE, "+44 7911 123456", RULES) == "+447911123456"
    assert ident.normalize(ident.PHONE, "0044 7911 123456", RULES) == "+447911123456"
    us = ident.IdentityRules(default_region="US")
    assert ident.normalize(ident.PHONE, "(415) 555-2671", us) == "+14155552671"
    assert ident.normalize(ident.PHONE, "+44 7911 123456", us) == "+447911123456"


@pytest.mark.parametrize("raw", ["12345", "+44 20", "phone"])
def test_invalid_phone_is_refused(raw: str) -> None:
    with pytest.raises(ident.InvalidIdentifier):
        ident.normalize(ident.PHONE, raw, RULES)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (ident.EMAIL, "test@test.com"),
        (ident.EMAIL, "TEST@TEST.COM"),
        (ident.EMAIL, "noreply@acme.com"),
        (ident.PHONE, "0000000000"),
        (ident.PHONE, "1111111111"),
        (ident.PHONE, "1234567890"),
        (ident.USER_ID, "undefined"),
        (ident.USER_ID, "null"),
        (ident.USER_ID, " NULL "),
        (ident.USER_ID, ""),
        (ident.ANONYMOUS_ID, "00000000-0000-0000-0000-000000000000"),
        (ident.USER_ID, None),
    ],
)
def test_junk_values_identify_nobody(kind: str, raw: str | None) -> None:
    assert ident.normalize(kind, raw, RULES) is None


def test_workspace_can_block_more_values_and_set_rules() -> None:
    rules = ident.rules_from_settings(
        {
            "identity": {
                "blocked": {"email": ["Shop@Acme.com"], "user_id": ["guest-1"]},
                "merge_kinds": ["user_id"],
                "max_per_kind": {"user_id": 1, "email": 3},
            }
        },
        default_region="us",
    )
    assert rules.default_region == "US"
    assert ident.normalize(ident.EMAIL, "shop@acme.com", rules) is None
    assert ident.normalize(ident.USER_ID, "guest-1", rules) is None
    assert ident.normalize(ident.USER_ID, "guest-2", rules) == "guest-2"
    assert rules.may_merge(ident.USER_ID) and not rules.may_merge(ident.EMAIL)
    assert rules.limit(ident.USER_ID) == 1 and rules.limit(ident.PHONE) is None


def test_defaults_let_strong_identifiers_and_alias_merge_but_not_anonymous_ids() -> None:
    rules = ident.rules_from_settings({})
    assert rules.may_merge(ident.USER_ID) and rules.may_merge(ident.EMAIL) and rules.may_merge(ident.ALIAS)
    assert rules.may_merge("external:crm")
    assert not rules.may_merge(ident.ANONYMOUS_ID)


def test_numeric_ids_are_kept_as_decimal_strings() -> None:
    assert ident.normalize(ident.USER_ID, 42, RULES) == "42"
    assert ident.normalize(ident.USER_ID, 42.0, RULES) == "42"


def test_suppression_hash_depends_on_workspace_kind_and_value() -> None:
    h = ident.suppression_hash(1, ident.EMAIL, "a@x.io")
    assert len(h) == 64 and all(c in "0123456789abcdef" for c in h)
    assert h == ident.suppression_hash(1, ident.EMAIL, "a@x.io")
    assert h != ident.suppression_hash(2, ident.EMAIL, "a@x.io")
    assert h != ident.suppression_hash(1, ident.USER_ID, "a@x.io")
    assert "a@x.io" not in h


def test_identifiers_are_ordered_by_priority_and_unique() -> None:
    got = ident.ordered(
        [(ident.ANONYMOUS_ID, "a"), (ident.EMAIL, "e@x.io"), (ident.USER_ID, "u"), (ident.EMAIL, "e@x.io")],
        RULES,
    )
    assert got == [(ident.USER_ID, "u"), (ident.EMAIL, "e@x.io"), (ident.ANONYMOUS_ID, "a")]


def test_display_name_from_name_or_first_and_last() -> None:
    assert ident.display_name({"name": " Ann Lee "}) == "Ann Lee"
    assert ident.display_name({"firstName": "Ann", "lastName": "Lee"}) == "Ann Lee"
    assert ident.display_name({"first_name": "Ann"}) == "Ann"
    assert ident.display_name({}) is None
