"""A seeded, deterministic generator of a UK-style retailer's customers and their year of events.

Pure: no I/O, no clock, no global randomness. Customer ``i`` is drawn from its own ``random.Random``
seeded with ``(seed, i)``, so the output is identical for the same seed, a smaller workspace is a prefix of
a bigger one, and memory stays flat: ``iter_chunks`` builds one chunk of customers at a time.

Example::

    spec = SynthSpec(profiles=10_000, seed=7)
    for chunk in iter_chunks(spec):
        store(chunk.profiles, chunk.events)

Each customer gives one profile row (``PROFILE_COLUMNS``) and about ten Segment-spec messages: web page
views and app screen views, product views, online and in-store ``order_completed`` (GBP, items,
category; in-store ones carry the store), email and SMS engagement, sign-ups, and for about one in five an
anonymous visit later tied to the customer by an ``identify``. About one customer in twenty also brings an
anonymous visitor who never identifies. Activity is skewed: a gamma-distributed engagement factor makes a
few heavy customers and many light ones, and about four in ten buy in the year.

``context.channel`` is one of Rapport's channel names: web, app, store (in-store purchases), email, sms.
Emails use reserved domains (example.com, .example) and phones the 07 4xx mobile range, unique per customer.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from rapport.synth.catalogue import (
    CATEGORIES,
    EMAIL_CAMPAIGNS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    PAGES,
    PRODUCTS,
    REFERRERS,
    RETAILER,
    SCREENS,
    SMS_CAMPAIGNS,
    STORES,
    TOWNS,
    Product,
    Store,
)

DEFAULT_REFERENCE_DATE = datetime(2026, 11, 1, tzinfo=UTC)
DAY_MS = 86_400_000
SITE = "https://www.hartleyandfinch.example"
TIMEZONE = "Europe/London"

#: The keys of every profile row, in CSV column order.
PROFILE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "postcode",
    "country",
    "region",
    "latitude",
    "longitude",
    "timezone",
    "birthday",
    "signup_date",
    "contract_end",
    "plan",
    "email_consent",
    "sms_consent",
    "home_store",
    "favourite_category",
    "loyalty_tier",
)

#: Names of the purchase events (online and in-store both send ``order_completed``).
PURCHASE_EVENT = "order_completed"

_POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
_TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737 documentation ranges
_STORES_BY_CITY: dict[str, tuple[Store, ...]] = {
    town.city: tuple(s for s in STORES if s.city == town.city) for town in TOWNS
}
_PRODUCTS_BY_CATEGORY: dict[str, tuple[Product, ...]] = {
    c: tuple(p for p in PRODUCTS if p.category == c) for c in CATEGORIES
}
_TOWN_CUM = [sum(t.weight for t in TOWNS[: i + 1]) for i in range(len(TOWNS))]
# Hour-of-day weights: browsing peaks at lunch and in the evening; shops open 9-18.
_WEB_HOURS = [
    1,
    0.5,
    0.3,
    0.2,
    0.2,
    0.4,
    1,
    2,
    3,
    3.5,
    4,
    4.5,
    5.5,
    5,
    4.5,
    4.5,
    5,
    5.5,
    6,
    7,
    7.5,
    6.5,
    4.5,
    2.5,
]
_STORE_HOURS = [0] * 9 + [3, 5, 6, 7, 7, 6, 6, 6, 5, 3] + [0] * 5
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class SynthSpec:
    """What to generate: how many customers, the seed, and the end of the year of activity (exclusive)."""

    profiles: int
    seed: int = 7
    reference_date: datetime = DEFAULT_REFERENCE_DATE
    chunk_size: int = 1000
    days: int = 365

    def __post_init__(self) -> None:
        if self.profiles < 0 or self.seed < 0 or self.chunk_size < 1 or self.days < 30:
            raise ValueError("profiles and seed must be >= 0, chunk_size >= 1 and days >= 30")

    @property
    def window_start(self) -> datetime:
        """Return the first instant of the year of activity."""
        return self.reference_date - timedelta(days=self.days)


@dataclass
class Chunk:
    """Profile rows and messages of customers ``start`` to ``start + len(profiles) - 1``."""

    index: int
    start: int
    profiles: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def iter_chunks(spec: SynthSpec, *, first: int = 0, stop: int | None = None) -> Iterator[Chunk]:
    """Yield the workspace chunk by chunk (``spec.chunk_size`` customers each).

    ``first``/``stop`` select customers ``first`` to ``stop - 1`` only (to generate parts in parallel).
    """
    calendar = _Calendar(spec)
    end = spec.profiles if stop is None else min(stop, spec.profiles)
    for index, start in enumerate(range(first, end, spec.chunk_size)):
        chunk = Chunk(index=index, start=start)
        for i in range(start, min(start + spec.chunk_size, end)):
            row, events = _Customer(spec, calendar, i).build()
            chunk.profiles.append(row)
            chunk.events.extend(events)
        yield chunk


def iter_profiles(spec: SynthSpec) -> Iterator[dict[str, Any]]:
    """Yield every profile row."""
    for chunk in iter_chunks(spec):
        yield from chunk.profiles


def iter_events(spec: SynthSpec) -> Iterator[dict[str, Any]]:
    """Yield every Segment-spec message, customer by customer, each customer's in time order."""
    for chunk in iter_chunks(spec):
        yield from chunk.events


def stores() -> list[dict[str, object]]:
    """Return the retailer's stores as plain dicts."""
    return [s.as_dict() for s in STORES]


def products() -> list[dict[str, object]]:
    """Return the product catalogue as plain dicts."""
    return [p.as_dict() for p in PRODUCTS]


def user_id_for(index: int) -> str:
    """Return the user id of customer ``index`` (0-based)."""
    return f"cus-{index + 1:07d}"


class _Calendar:
    """Day strings and seasonal weights of the window, shared by all customers of a run."""

    def __init__(self, spec: SynthSpec) -> None:
        start = spec.window_start
        self.days = spec.days
        self.day_strings = [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(spec.days)]
        weights = []
        for d in range(spec.days):
            day = (start + timedelta(days=d)).date()
            w = 1.3 if day.weekday() >= 5 else 1.0
            if (day.month == 11 and day.day >= 20) or (day.month == 12 and day.day <= 23):
                w *= 1.9  # Black Friday to Christmas
            elif (day.month == 12 and day.day >= 27) or (day.month == 1 and day.day <= 12):
                w *= 1.4  # January sale
            elif day.month == 8:
                w *= 0.85
            weights.append(w)
        self.day_cum = _cumulative(weights)
        self.web_cum = _cumulative(_WEB_HOURS)
        self.store_cum = _cumulative(_STORE_HOURS)
        self.reference_date = spec.reference_date.date()

    def iso(self, ms: int) -> str:
        """Format a window offset in milliseconds as an ISO-8601 UTC timestamp."""
        day, rem = divmod(ms, DAY_MS)
        secs, milli = divmod(rem, 1000)
        h, rest = divmod(secs, 3600)
        m, s = divmod(rest, 60)
        return f"{self.day_strings[day]}T{h:02d}:{m:02d}:{s:02d}.{milli:03d}Z"

    def sample(self, rnd: random.Random, lo: int, *, store_hours: bool = False) -> int:
        """Draw an instant (window ms) at or after ``lo``, following the seasonal and daily pattern."""
        first_day = lo // DAY_MS
        base = self.day_cum[first_day - 1] if first_day else 0.0
        day = bisect.bisect_right(self.day_cum, base + rnd.random() * (self.day_cum[-1] - base))
        day = min(day, self.days - 1)
        cum = self.store_cum if store_hours else self.web_cum
        hour = bisect.bisect_right(cum, rnd.random() * cum[-1])
        ms = day * DAY_MS + min(hour, 23) * _HOUR_MS + rnd.randrange(_HOUR_MS)
        if ms >= lo:
            return ms
        return min(lo + rnd.randrange(DAY_MS), self.days * DAY_MS - 1)


def _cumulative(weights: list[float] | list[int]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _poisson(rnd: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rnd.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rnd.random()
    while p > limit:
        k += 1
        p *= rnd.random()
    return k


class _Customer:
    """One customer: draws the profile first, then the events, from the customer's own random stream."""

    def __init__(self, spec: SynthSpec, calendar: _Calendar, index: int) -> None:
        self.spec = spec
        self.cal = calendar
        self.index = index
        self.rnd = random.Random((spec.seed << 40) | index)
        self.user_id = user_id_for(index)
        self.end_ms = spec.days * DAY_MS
        self.pending: list[tuple[int, dict[str, Any]]] = []

    @cached_property
    def location(self) -> dict[str, Any]:
        return {
            "city": self.town.city,
            "country": "United Kingdom",
            "latitude": self.latitude,
            "longitude": self.longitude,
        }

    def build(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Return the profile row and the customer's messages in time order."""
        row = self._profile()
        self._events()
        self.pending.sort(key=lambda pair: pair[0])
        events = []
        for n, (ms, msg) in enumerate(self.pending):
            msg["messageId"] = f"syn-{self.spec.seed}-{self.index}-{n}"
            msg["timestamp"] = self.cal.iso(ms)
            events.append(msg)
        row["loyalty_tier"] = "gold" if self.spend >= 500 else "silver" if self.spend >= 150 else "bronze"
        return row, events

    # -- profile ---------------------------------------------------------------------------------

    def _profile(self) -> dict[str, Any]:
        rnd, spec = self.rnd, self.spec
        self.town = TOWNS[bisect.bisect_right(_TOWN_CUM, rnd.random() * _TOWN_CUM[-1])]
        area = rnd.choice(self.town.areas)
        district = rnd.randint(1, self.town.max_district)
        letters = rnd.choice(_POSTCODE_LETTERS) + rnd.choice(_POSTCODE_LETTERS)
        postcode = f"{area}{district} {rnd.randint(0, 9)}{letters}"
        self.latitude = round(self.town.latitude + rnd.gauss(0, 0.03), 5)
        self.longitude = round(self.town.longitude + rnd.gauss(0, 0.045), 5)
        first, last = rnd.choice(FIRST_NAMES), rnd.choice(LAST_NAMES)
        local = f"{first}.{last}".lower().replace("'", "")
        self.email = f"{local}{self.index + 1}@{rnd.choice(EMAIL_DOMAINS)}"
        # 07 4xx mobile numbers, a bijection of the index (48271 is prime, so coprime with 10^8).
        phone = f"+4474{(self.index * 48271 + spec.seed * 7919) % 100_000_000:08d}"
        ref = spec.reference_date.date()
        age_days = int((18 + rnd.betavariate(2.0, 3.5) * 67) * 365.25)
        birthday = ref - timedelta(days=age_days)
        if rnd.random() < 0.3:
            self.lo = rnd.randrange(self.end_ms - DAY_MS)
            signup = spec.window_start + timedelta(milliseconds=self.lo)
            self.signed_up_in_window = True
        else:
            self.lo = 0
            signup = spec.window_start - timedelta(days=rnd.randint(1, 4 * 365))
            self.signed_up_in_window = False
        contract_end: str | None = None
        plan: str | None = None
        if rnd.random() < 0.25:
            plan = "finch_plus"
            contract_end = (ref + timedelta(days=rnd.randint(-60, 365))).isoformat()
        self.email_consent = _pick(rnd, (0.55, "subscribed"), (0.15, "unsubscribed"), (0.30, "never_asked"))
        self.sms_consent = _pick(rnd, (0.30, "subscribed"), (0.10, "unsubscribed"), (0.60, "never_asked"))
        local_stores = _STORES_BY_CITY[self.town.city]
        self.home_store = rnd.choice(local_stores)
        self.favourite = rnd.choice(CATEGORIES)
        self.engagement = rnd.gammavariate(0.45, 1 / 0.45)  # mean 1, long right tail
        self.buyer = rnd.random() < 0.8
        self.ip = f"{rnd.choice(_TEST_NETS)}.{rnd.randint(1, 254)}"
        self.first_name, self.last_name = first, last
        self.spend = 0.0
        return {
            "user_id": self.user_id,
            "email": self.email,
            "phone": phone,
            "first_name": first,
            "last_name": last,
            "city": self.town.city,
            "postcode": postcode,
            "country": "GB",
            "region": self.town.region,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "timezone": TIMEZONE,
            "birthday": birthday.isoformat(),
            "signup_date": signup.date().isoformat(),
            "contract_end": contract_end,
            "plan": plan,
            "email_consent": self.email_consent,
            "sms_consent": self.sms_consent,
            "home_store": self.home_store.id,
            "favourite_category": self.favourite,
            "loyalty_tier": None,
        }

    # -- events ----------------------------------------------------------------------------------

    def _context(self, channel: str) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "channel": channel,
            "ip": self.ip,
            "timezone": TIMEZONE,
            "location": self.location,
        }
        if channel == "app":
            ctx["app"] = {"name": RETAILER, "version": "4.2.1"}
            ctx["os"] = {"name": "iOS" if self.index % 3 else "Android"}
        return ctx

    def _add(self, ms: int, msg: dict[str, Any]) -> None:
        self.pending.append((min(ms, self.end_ms - 1), msg))

    def _track(self, ms: int, event: str, properties: dict[str, Any], channel: str) -> None:
        self._add(
            ms,
            {
                "type": "track",
                "event": event,
                "userId": self.user_id,
                "properties": properties,
                "context": self._context(channel),
            },
        )

    def _events(self) -> None:
        rnd = self.rnd
        if rnd.random() < 0.2:
            self._anonymous_then_identify()
        elif self.signed_up_in_window:
            method = rnd.choice(("web", "app", "store"))
            self._track(self.lo, "signed_up", {"method": method}, method)
        for _ in range(_poisson(rnd, 2.0 * self.engagement)):
            self._session(self.cal.sample(rnd, self.lo), self.user_id, None)
        if self.buyer:
            for j in range(_poisson(rnd, 1.8 * self.engagement)):
                self._purchase(j)
        self._email()
        self._sms()
        if rnd.random() < 0.05:
            self._unidentified_visitor()

    def _anonymous_then_identify(self) -> None:
        rnd = self.rnd
        anonymous_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        start = self.cal.sample(rnd, self.lo)
        end = self._session(start, None, anonymous_id)
        self._add(
            end + rnd.randrange(30_000, 600_000),
            {
                "type": "identify",
                "userId": self.user_id,
                "anonymousId": anonymous_id,
                "traits": {"email": self.email, "first_name": self.first_name, "last_name": self.last_name},
                "context": self._context("web"),
            },
        )

    def _unidentified_visitor(self) -> None:
        rnd = self.rnd
        anonymous_id = str(uuid.UUID(int=rnd.getrandbits(128), version=4))
        self._session(self.cal.sample(rnd, 0), None, anonymous_id)

    def _session(self, ms: int, user_id: str | None, anonymous_id: str | None) -> int:
        """Add one web or app visit starting at ``ms``; return the time of its last message."""
        rnd = self.rnd
        app = rnd.random() < 0.35
        who: dict[str, Any] = {"userId": user_id} if user_id else {"anonymousId": anonymous_id}
        channel = "app" if app else "web"
        for _ in range(1 + _poisson(rnd, 0.8)):
            if app:
                msg = {"type": "screen", "name": rnd.choice(SCREENS), "properties": {}}
            else:
                path, title = rnd.choice(PAGES)
                msg = {
                    "type": "page",
                    "name": title,
                    "properties": {
                        "path": path,
                        "url": SITE + path,
                        "title": f"{title} | {RETAILER}",
                        "referrer": rnd.choice(REFERRERS),
                    },
                }
            self._add(ms, {**msg, **who, "context": self._context(channel)})
            ms += rnd.randrange(5_000, 90_000)
        viewed = _poisson(rnd, 0.8)
        for k in range(viewed):
            product = self._product()
            props = {
                "sku": product.sku,
                "name": product.name,
                "category": product.category,
                "price": product.price,
                "currency": "GBP",
            }
            self._add(ms, {"type": "track", "event": "product_viewed", **who, "properties": props,
                           "context": self._context(channel)})  # fmt: skip
            ms += rnd.randrange(10_000, 120_000)
            if k == viewed - 1 and rnd.random() < 0.15:
                self._add(ms, {"type": "track", "event": "product_added", **who,
                               "properties": {**props, "quantity": 1}, "context": self._context(channel)})  # fmt: skip
        return ms

    def _product(self) -> Product:
        rnd = self.rnd
        if rnd.random() < 0.5:
            return rnd.choice(_PRODUCTS_BY_CATEGORY[self.favourite])
        return rnd.choice(PRODUCTS)

    def _purchase(self, j: int) -> None:
        rnd = self.rnd
        in_store = rnd.random() < 0.45
        ms = self.cal.sample(rnd, self.lo, store_hours=in_store)
        items = []
        total = 0.0
        for _ in range(1 + _poisson(rnd, 0.6)):
            product = self._product()
            quantity = 1 if rnd.random() < 0.85 else 2
            total += product.price * quantity
            items.append({"sku": product.sku, "name": product.name, "category": product.category,
                          "price": product.price, "quantity": quantity})  # fmt: skip
        if not in_store and total < 50:
            total += 3.95  # delivery
        total = round(total, 2)
        self.spend += total
        props: dict[str, Any] = {
            "order_id": f"HF{self.index + 1:07d}-{j + 1:03d}",
            "total": total,
            "currency": "GBP",
            "items": len(items),
            "category": items[0]["category"],
            "products": items,
        }
        if in_store:
            store = self.home_store if rnd.random() < 0.85 else rnd.choice(STORES)
            props.update(source="store", store_id=store.id, store_name=store.name, store_city=store.city)
            self._track(ms, PURCHASE_EVENT, props, "store")
        else:
            app = rnd.random() < 0.35
            props["source"] = "app" if app else "web"
            self._track(ms, PURCHASE_EVENT, props, "app" if app else "web")

    def _email(self) -> None:
        if self.email_consent == "never_asked":
            return
        rnd = self.rnd
        until = self.end_ms
        if self.email_consent == "unsubscribed":
            until = self.cal.sample(rnd, self.lo)
            self._track(until, "email_unsubscribed", {"list": "newsletter"}, "email")
        openness = rnd.betavariate(1.2, 2.0) * min(2.0, 0.6 + 0.4 * self.engagement)
        for campaign_id, days_before, name in EMAIL_CAMPAIGNS:
            sent = (self.cal.days - days_before) * DAY_MS + 10 * _HOUR_MS + rnd.randrange(1_800_000)
            if sent < self.lo or sent >= until or rnd.random() >= 0.12:
                continue
            props = {"campaign_id": campaign_id, "campaign_name": name, "subject": f"{name} at {RETAILER}"}
            self._track(sent, "email_delivered", props, "email")
            if rnd.random() < openness:
                opened = sent + int(rnd.expovariate(1 / (3 * _HOUR_MS)))
                self._track(opened, "email_opened", props, "email")
                if rnd.random() < 0.3:
                    clicked = opened + rnd.randrange(5_000, 300_000)
                    self._track(clicked, "email_clicked", {**props, "url": SITE + "/new-in"}, "email")

    def _sms(self) -> None:
        if self.sms_consent == "never_asked":
            return
        rnd = self.rnd
        until = self.end_ms
        if self.sms_consent == "unsubscribed":
            until = self.cal.sample(rnd, self.lo)
            self._track(until, "sms_unsubscribed", {"keyword": "STOP"}, "sms")
        for campaign_id, days_before, name in SMS_CAMPAIGNS:
            sent = (self.cal.days - days_before) * DAY_MS + 12 * _HOUR_MS + rnd.randrange(600_000)
            if sent < self.lo or sent >= until or rnd.random() >= 0.2:
                continue
            props = {"campaign_id": campaign_id, "campaign_name": name}
            self._track(sent, "sms_delivered", props, "sms")
            if rnd.random() < 0.12:
                clicked = sent + rnd.randrange(30_000, 3 * _HOUR_MS)
                self._track(clicked, "sms_clicked", {**props, "url": SITE + "/sale"}, "sms")


def _pick(rnd: random.Random, *options: tuple[float, str]) -> str:
    r = rnd.random()
    for share, value in options:
        if r < share:
            return value
        r -= share
    return options[-1][1]
