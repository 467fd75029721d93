"""Identity rules, pure: normalise identifiers, refuse junk, hash for suppression, read merge rules.

Identifier kinds: ``user_id``, ``anonymous_id``, ``email`` (trimmed, lower-cased), ``phone`` (E.164, parsed
with the workspace's default region), ``device_token`` and ``external:<system>``. Gmail dots and ``+tags``
are deliberately *not* stripped: ``j.doe@gmail.com`` and ``jdoe@gmail.com`` stay two identifiers, because
the rewrite is provider-specific and a wrong merge of two people is worse than a missed one.

Rules come from ``Workspace.settings["identity"]``::

    {"merge_kinds": ["user_id", "email", "phone", "external", "alias"],
     "max_per_kind": {"user_id": 1, "email": 5},
     "blocked": {"email": ["noreply@acme.com"]},
     "priority": ["user_id", "email", "phone", "external", "device_token", "anonymous_id"]}
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
DEVICE_TOKEN = "device_token"  # noqa: S105 (an identifier kind, not a secret)
EXTERNAL = "external"
#: Pseudo-kind for merge rules: an explicit ``alias`` call links two identifiers of any kind.
ALIAS = "alias"

DEFAULT_PRIORITY: tuple[str, ...] = (USER_ID, EMAIL, PHONE, EXTERNAL, DEVICE_TOKEN, ANONYMOUS_ID)
#: By default an ``anonymous_id`` links an anonymous visitor to a known person but never merges two known
#: people (a shared device would fold a household into one profile); strong identifiers and alias do.
DEFAULT_MERGE_KINDS: frozenset[str] = frozenset({USER_ID, EMAIL, PHONE, EXTERNAL, DEVICE_TOKEN, ALIAS})

_JUNK_ANY = frozenset(
    {"", "null", "none", "nil", "undefined", "nan", "n/a", "na", "unknown", "anonymous", "test", "guest", "0"}
)
_JUNK_EMAILS = frozenset(
    {
        "test@test.com",
        "test@example.com",
        "example@example.com",
        "email@example.com",
        "user@example.com",
        "a@a.com",
        "a@b.com",
        "no@email.com",
        "noemail@noemail.com",
        "none@none.com",
        "null@null.com",
        "asdf@asdf.com",
        "foo@bar.com",
    }
)
_JUNK_USER_IDS = frozenset(
    {"-1", "00000000-0000-0000-0000-000000000000", "undefined_user", "[object object]"}
)
_EMAIL_RE = re.compile(r"^[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\]]{2,}$")
_MAX_LEN = 400


class InvalidIdentifier(ValueError):
    """An identifier value that cannot be normalised (a malformed email or phone number)."""


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """A workspace's identity configuration (see the module docstring)."""

    default_region: str = "GB"
    merge_kinds: frozenset[str] = DEFAULT_MERGE_KINDS
    max_per_kind: Mapping[str, int] = field(default_factory=dict)
    blocked: Mapping[str, frozenset[str]] = field(default_factory=dict)
    priority: tuple[str, ...] = DEFAULT_PRIORITY

    def may_merge(self, kind: str) -> bool:
        """Tell whether an identifier of ``kind`` may merge two known profiles."""
        return base_kind(kind) in self.merge_kinds

    def limit(self, kind: str) -> int | None:
        """Return the most identities of ``kind`` one profile may hold, or None for no limit."""
        value = self.max_per_kind.get(kind, self.max_per_kind.get(base_kind(kind)))
        return int(value) if value else None

    def rank(self, kind: str) -> int:
        """Return the priority of ``kind`` (lower wins) when picking which identifiers to keep."""
        kinds = self.priority
        key = base_kind(kind)
        return kinds.index(key) if key in kinds else len(kinds)


def rules_from_settings(settings: Mapping[str, Any] | None, *, default_region: str = "GB") -> IdentityRules:
    """Build the rules from ``Workspace.settings``; missing keys keep their defaults."""
    conf = (settings or {}).get("identity") or {}
    merge = conf.get("merge_kinds")
    blocked_raw = conf.get("blocked") or {}
    return IdentityRules(
        default_region=(default_region or "GB").upper(),
        merge_kinds=frozenset(merge) if merge is not None else DEFAULT_MERGE_KINDS,
        max_per_kind={str(k): int(v) for k, v in (conf.get("max_per_kind") or {}).items()},
        blocked={str(k): frozenset(str(v).strip().lower() for v in vs) for k, vs in blocked_raw.items()},
        priority=tuple(conf.get("priority") or DEFAULT_PRIORITY),
    )


def base_kind(kind: str) -> str:
    """Return ``external`` for ``external:<system>`` and the kind itself otherwise."""
    return EXTERNAL if kind.startswith(EXTERNAL + ":") else kind


def normalize_email(raw: str) -> str:
    """Trim and lower-case an email address; raise InvalidIdentifier when it is not one."""
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    if len(value) > 320 or not _EMAIL_RE.match(value):
        raise InvalidIdentifier("not an email address")
    return value


def normalize_phone(raw: str, region: str) -> str:
    """Return the phone number in E.164, parsed with ``region`` when it has no country code."""
    text = raw.strip()
    if not text:
        raise InvalidIdentifier("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    value, error = _e164(text, region.upper())
    if value is None:
        raise InvalidIdentifier(error or "not a phone number")
    return value


@functools.lru_cache(maxsize=65_536)
def _e164(text: str, region: str) -> tuple[str | None, str | None]:
    """Parse once per (text, region): phonenumbers costs ~50 µs a number and imports repeat numbers."""
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException:
        return None, "not a phone number"
    if not phonenumbers.is_valid_number(number):
        return None, "not a valid phone number for its region"
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), None


def normalize(kind: str, raw: Any, rules: IdentityRules) -> str | None:
    """Return the normalised identifier, None for an absent or junk value; raise InvalidIdentifier."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        raw = str(int(raw)) if float(raw).is_integer() else str(raw)
    if not isinstance(raw, str):
        raise InvalidIdentifier(f"{base_kind(kind)} must be a string")
    text = raw.strip()
    if text.lower() in _JUNK_ANY:
        return None
    if kind == EMAIL:
        value = normalize_email(text)
    elif kind == PHONE:
        digits = re.sub(r"\D", "", text)
        if not digits:
            raise InvalidIdentifier("not a phone number")
        if len(set(digits)) == 1 or digits in {"1234567890", "0123456789", "123456789"}:
            return None
        value = normalize_phone(text, rules.default_region)
    else:
        value = text
        if len(value) > _MAX_LEN:
            raise InvalidIdentifier(f"{base_kind(kind)} longer than {_MAX_LEN} characters")
    if is_junk(kind, value, rules):
        return None
    return value


def is_junk(kind: str, value: str, rules: IdentityRules) -> bool:
    """Tell whether a normalised value is a placeholder that must never identify anyone."""
    low = value.lower()
    if low in _JUNK_ANY:
        return True
    if kind == EMAIL and (low in _JUNK_EMAILS or low.split("@", 1)[0] in {"test", "noreply", "no-reply"}):
        return True
    if kind in (USER_ID, ANONYMOUS_ID) and low in _JUNK_USER_IDS:
        return True
    blocked = rules.blocked.get(kind) or rules.blocked.get(base_kind(kind))
    return bool(blocked and low in blocked)


def suppression_hash(workspace_id: int, kind: str, value: str) -> str:
    """Return the sha256 kept for an erased identifier: over workspace id, kind and normalised value."""
    return hashlib.sha256(f"{workspace_id}\x1f{kind}\x1f{value}".encode()).hexdigest()


def identifiers_from_traits(
    traits: Mapping[str, Any] | None, rules: IdentityRules
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Extract (kind, value) identifiers from traits (email, phone); return them and (field, reason) errors."""
    found: list[tuple[str, str]] = []
    errors: list[tuple[str, str]] = []
    if not traits:
        return found, errors
    for kind in (EMAIL, PHONE):
        raw = traits.get(kind)
        if raw is None:
            continue
        try:
            value = normalize(kind, raw, rules)
        except InvalidIdentifier as exc:
            errors.append((kind, str(exc)))
            continue
        if value is not None:
            found.append((kind, value))
    return found, errors


def ordered(identifiers: Iterable[tuple[str, str]], rules: IdentityRules) -> list[tuple[str, str]]:
    """Return unique identifiers in priority order (stable within a kind)."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for ident in identifiers:
        if ident not in seen:
            seen.add(ident)
            unique.append(ident)
    return sorted(unique, key=lambda i: rules.rank(i[0]))


def display_name(traits: Mapping[str, Any]) -> str | None:
    """Return a display name from ``name`` or first/last name traits."""
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()[:200]
    first = traits.get("first_name", traits.get("firstName"))
    last = traits.get("last_name", traits.get("lastName"))
    parts = [str(p).strip() for p in (first, last) if isinstance(p, str | int) and str(p).strip()]
    return " ".join(parts)[:200] or None
