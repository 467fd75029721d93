"""Rapport's Liquid filters: money and dates in the recipient's locale and timezone, names, defaults.

The recipient is read from the render context (``recipient.locale``, ``recipient.timezone``,
``recipient.currency``) and "today" from ``now`` (the context builder sets both), so every filter is
deterministic for a given context. A value a filter cannot use (missing, empty, not a number/date)
renders as an empty string, so ``| default: "…"`` can follow it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from time import thread_time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, list_currencies
from liquid import Environment, RenderContext
from liquid.exceptions import FilterArgumentError
from liquid.filter import with_context
from liquid.undefined import Undefined

DEFAULT_LOCALE = "en_GB"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_CURRENCY = "GBP"

_CURRENCIES = frozenset(list_currencies())
_WARM: set[str] = set()
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


@lru_cache(maxsize=256)
def _locale(tag: str) -> Locale:
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        locale = Locale.parse(DEFAULT_LOCALE)
    locale.number_symbols  # noqa: B018 (babel loads a locale's data lazily: load it now, all of it)
    return locale


def warm_locales(tags: Iterable[str]) -> None:
    """Load the data of these locales now (at start-up), so first renders do not pay for it."""
    for tag in tags:
        _locale(tag)
        if len(_WARM) < 1024:
            _WARM.add(tag)


def _warm_locale(tag: str, context: RenderContext) -> None:
    """Load a locale's data the first time it is seen, without charging the render's time budget.

    Reading babel's data for a new locale costs tens of milliseconds once per process; that is not the
    template's doing and must not fail the first message to a French recipient.
    """
    if tag in _WARM:
        return
    started = thread_time()
    _locale(tag)
    budget = getattr(context, "budget", None)
    if budget is not None:
        budget.credit(thread_time() - started)
    if len(_WARM) < 1024:
        _WARM.add(tag)


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _recipient(context: RenderContext) -> Mapping[str, Any]:
    recipient = context.resolve("recipient", default=None)
    return recipient if isinstance(recipient, Mapping) else {}


def recipient_locale(context: RenderContext) -> str:
    """Return the recipient's locale tag (``recipient.locale``, else en_GB), its data loaded."""
    tag = _recipient(context).get("locale")
    if not isinstance(tag, str) or not tag:
        tag = DEFAULT_LOCALE
    _warm_locale(tag, context)
    return tag


def recipient_zone(context: RenderContext) -> tzinfo:
    """Return the recipient's timezone (``recipient.timezone``, else UTC)."""
    name = _recipient(context).get("timezone")
    return _zone(name if isinstance(name, str) and name else DEFAULT_TIMEZONE)


def to_decimal(value: object) -> Decimal | None:
    """Return ``value`` as a Decimal, or None when it is missing or not a number."""
    if isinstance(value, bool) or value is None or isinstance(value, Undefined):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int | float):
        number = Decimal(str(value))
        return number if number.is_finite() else None
    if isinstance(value, str) and value.strip():
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def to_moment(value: object) -> datetime | date | None:
    """Return ``value`` as an aware datetime (naive means UTC) or a date, or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
        if len(text) <= 10:
            return parsed.date()
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


def _local_day(moment: datetime | date, zone: tzinfo) -> date:
    if isinstance(moment, datetime):
        return moment.astimezone(zone).date()
    return moment


def _today(context: RenderContext, zone: tzinfo) -> date:
    now = to_moment(context.resolve("now", default=None))
    if not isinstance(now, datetime):
        now = datetime.now(UTC)
    return now.astimezone(zone).date()


# babel is slow (~20 µs a currency); prices and dates repeat across recipients, so results are cached.
@lru_cache(maxsize=8192)
def _format_money(amount: Decimal, code: str, tag: str) -> str:
    return str(format_currency(amount, code, locale=_locale(tag)))


@lru_cache(maxsize=4096)
def _format_day(day: date, fmt: str, tag: str) -> str:
    return str(format_date(day, format=fmt, locale=_locale(tag)))


@lru_cache(maxsize=4096)
def _format_time(moment: datetime, fmt: str, zone: tzinfo, tag: str) -> str:
    return str(format_time(moment, format=fmt, tzinfo=zone, locale=_locale(tag)))


@lru_cache(maxsize=4096)
def _format_datetime(moment: datetime, fmt: str, zone: tzinfo, tag: str) -> str:
    return str(format_datetime(moment, format=fmt, tzinfo=zone, locale=_locale(tag)))


@with_context
def money(value: object, currency: object = None, *, context: RenderContext) -> str:
    """Format ``value`` as money in the recipient's locale: ``{{ 1234.5 | money: "GBP" }}`` → £1,234.50."""
    amount = to_decimal(value)
    if amount is None:
        return ""
    code = currency if isinstance(currency, str) and currency else None
    if code is None:
        fallback = _recipient(context).get("currency")
        code = fallback if isinstance(fallback, str) and fallback else DEFAULT_CURRENCY
    code = code.upper()
    if code not in _CURRENCIES:
        raise FilterArgumentError(f"money: unknown currency {code!r}", token=None)
    return _format_money(amount, code, recipient_locale(context))


@with_context
def local_date(value: object, fmt: object = "medium", *, context: RenderContext) -> str:
    """Format a date in the recipient's locale and timezone (short, medium, long, full or a CLDR pattern)."""
    moment = to_moment(value)
    if moment is None:
        return ""
    day = _local_day(moment, recipient_zone(context))
    return _format_day(day, str(fmt or "medium"), recipient_locale(context))


@with_context
def local_time(value: object, fmt: object = "short", *, context: RenderContext) -> str:
    """Format the time of day of a datetime in the recipient's locale and timezone."""
    moment = to_moment(value)
    if not isinstance(moment, datetime):
        return ""
    zone = recipient_zone(context)
    return _format_time(moment, str(fmt or "short"), zone, recipient_locale(context))


@with_context
def local_datetime(value: object, fmt: object = "medium", *, context: RenderContext) -> str:
    """Format a datetime in the recipient's locale and timezone."""
    moment = to_moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    zone = recipient_zone(context)
    return _format_datetime(moment, str(fmt or "medium"), zone, recipient_locale(context))


@with_context
def days_until(value: object, *, context: RenderContext) -> int | str:
    """Whole days from the recipient's local today to ``value``'s local date (negative if past)."""
    moment = to_moment(value)
    if moment is None:
        return ""
    zone = recipient_zone(context)
    return (_local_day(moment, zone) - _today(context, zone)).days


@with_context
def days_since(value: object, *, context: RenderContext) -> int | str:
    """Whole days from ``value``'s local date to the recipient's local today."""
    moment = to_moment(value)
    if moment is None:
        return ""
    zone = recipient_zone(context)
    return (_today(context, zone) - _local_day(moment, zone)).days


def _capitalise(word: str) -> str:
    return word[:1].upper() + word[1:]


def titlecase(value: object) -> str:
    """Capitalise the first letter of each word (an apostrophe stays inside a word: "don't" → "Don't");
    an all-lower or all-upper input is lower-cased first, mixed case is otherwise kept ("McDonald")."""
    if value is None or isinstance(value, Undefined):
        return ""
    text = str(value)
    if text.isupper() or text.islower():
        text = text.lower()
    return _WORD.sub(lambda match: _capitalise(match.group(0)), text)


def first_name_or(value: object, fallback: object = "there") -> str:
    """The first word of a name, title-cased if it was all one case, else ``fallback`` when unusable."""
    alternative = "" if fallback is None or isinstance(fallback, Undefined) else str(fallback)
    if value is None or isinstance(value, Undefined) or not isinstance(value, str):
        return alternative
    words = value.strip().split()
    if not words:
        return alternative
    first = words[0].strip(",.;:")
    # Junk in a name field (an email address, digits, no letters) is worse than a friendly fallback.
    if (
        not first
        or "@" in first
        or any(ch.isdigit() for ch in first)
        or not any(ch.isalpha() for ch in first)
    ):
        return alternative
    if first.isupper() or first.islower():
        first = "-".join(_capitalise(part.lower()) for part in first.split("-"))
    return first


def _blank_aware_default(builtin: Callable[..., Any]) -> Callable[..., Any]:
    def default(obj: object, default_: object = "", *, allow_false: bool = False) -> Any:
        """Liquid's ``default``, which also treats a whitespace-only string as empty."""
        if isinstance(obj, str) and not obj.strip():
            return default_
        return builtin(obj, default_, allow_false=allow_false)

    return default


FILTERS: dict[str, Callable[..., Any]] = {
    "money": money,
    "local_date": local_date,
    "local_time": local_time,
    "local_datetime": local_datetime,
    "days_until": days_until,
    "days_since": days_since,
    "titlecase": titlecase,
    "first_name_or": first_name_or,
}


def register(env: Environment) -> None:
    """Add Rapport's filters to ``env`` and make ``default`` treat blank strings as empty."""
    for name, func in FILTERS.items():
        env.add_filter(name, func)
    env.add_filter("default", _blank_aware_default(env.filters["default"]))
