"""The customer directory behind the UI's search box: one query string, answered from indexes only.

``find_customers`` reads what was typed and asks only indexed questions, so it stays fast on 100k
profiles:

1. exact matches first: a profile id (``123`` or ``#123``), and any identifier that normalises to the text
   (user id, anonymous id, email, phone) through the unique ``(workspace, kind, value)`` index;
2. then prefixes: the start of the name (in the cases people type it), of the email address, or of the
   phone number in E.164 (``+4479…``), each as a range on the ``(workspace, name|email|phone)`` indexes.

Words inside a name ("smith" in "Olivia Smith") are not searched: that needs a full scan or a text index.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from sqlalchemy.orm import Session

from rapport.collect import identity as ident
from rapport.collect import processor as collect_processor
from rapport.errors import NotFound
from rapport.kit.pagination import Page
from rapport.models import Profile
from rapport.profiles import repository
from rapport.profiles import service as profiles_service

#: The longest search text looked at.
MAX_QUERY = 200
_ID_LIMIT = 2**62
_EXACT_KINDS = (ident.USER_ID, ident.ANONYMOUS_ID, ident.EMAIL, ident.PHONE)
MATCH_LABELS = {
    "id": "profile id",
    ident.USER_ID: "user id",
    ident.ANONYMOUS_ID: "anonymous id",
    ident.EMAIL: "email",
    ident.PHONE: "phone",
    "prefix": "",
}


@dataclass(frozen=True, slots=True)
class CustomerHit:
    """One search result and how it matched (``id``, an identifier kind, or ``prefix``)."""

    profile: Profile
    matched: str

    @property
    def match_label(self) -> str:
        """Return how the hit matched, for people ("" for a prefix match)."""
        return MATCH_LABELS.get(self.matched, self.matched)


@dataclass(frozen=True, slots=True)
class CustomerPage:
    """One page of search results and whether another follows."""

    hits: list[CustomerHit]
    has_more: bool
    offset: int
    limit: int


def _as_id(text: str) -> int | None:
    digits = text[1:] if text.startswith("#") else text
    if digits.isdigit() and 0 < int(digits) < _ID_LIMIT:
        return int(digits)
    return None


def _exact_pairs(text: str, rules: ident.IdentityRules) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for kind in _EXACT_KINDS:
        if kind == ident.EMAIL and "@" not in text:
            continue
        if kind == ident.PHONE and sum(ch.isdigit() for ch in text) < 6:
            continue
        try:
            value = ident.normalize(kind, text, rules)
        except ident.InvalidIdentifier:
            continue
        if value:
            pairs.append((kind, value))
    return pairs


def _exact_hits(db: Session, *, workspace_id: int, text: str) -> list[CustomerHit]:
    rules = collect_processor.rules_for(db, workspace_id)
    found: dict[int, str] = {}
    as_id = _as_id(text)
    if as_id is not None:
        with contextlib.suppress(NotFound):
            found[profiles_service.get_profile(db, workspace_id=workspace_id, profile_id=as_id).id] = "id"
    for pid, kind in repository.owners_of(db, workspace_id=workspace_id, pairs=_exact_pairs(text, rules)):
        try:
            live = profiles_service.get_profile(db, workspace_id=workspace_id, profile_id=pid)
        except NotFound:
            continue
        found.setdefault(live.id, kind)
    rows = {p.id: p for p in repository.live_by_ids(db, workspace_id=workspace_id, profile_ids=list(found))}
    return [CustomerHit(rows[pid], how) for pid, how in found.items() if pid in rows]


def _prefixes(text: str) -> list[tuple[str, str]]:
    """Return the (column, prefix) ranges worth walking for ``text``, in the order results are shown."""
    lowered = text.lower()
    digits = "".join(ch for ch in text if ch.isdigit())
    if "@" in text:
        return [("email", lowered)]
    if digits and all(ch.isdigit() or ch in "+-() ." for ch in text):
        # E.164 is stored: "+4479…" and "4479…" find the same numbers.
        return [("phone", "+" + digits)] if len(digits) >= 3 else []
    # Names as typed and in the cases people store them; the LIKE makes each range case-insensitive.
    names = [text[:1].upper() + text[1:], text.title(), text, lowered, text.upper()]
    return [("name", name) for name in dict.fromkeys(names)] + [("email", lowered)]


def find_customers(db: Session, *, workspace_id: int, query: str, page: Page) -> CustomerPage:
    """Search the workspace's live customers; an empty query lists the newest first.

    Results come as one sequence: exact matches, then each prefix range in :func:`_prefixes` order (names
    by name, emails by email), without repeats. Every range is read in index order and stops once the
    page is full, so a one-letter search costs no more than a precise one.
    """
    text = " ".join(query.split())[:MAX_QUERY]
    want = page.offset + page.limit + 1
    if not text:
        rows = repository.latest_profiles(
            db, workspace_id=workspace_id, page=Page(limit=page.limit + 1, offset=page.offset)
        )
        hits = [CustomerHit(p, "") for p in rows]
    else:
        found = _exact_hits(db, workspace_id=workspace_id, text=text)
        seen = {hit.profile.id for hit in found}
        for column, prefix in _prefixes(text):
            if len(found) >= want:
                break
            for profile in repository.starting_with(
                db, workspace_id=workspace_id, column=column, prefix=prefix, limit=want
            ):
                if profile.id not in seen:
                    seen.add(profile.id)
                    found.append(CustomerHit(profile, "prefix"))
        hits = found[page.offset : want]
    return CustomerPage(
        hits=hits[: page.limit], has_more=len(hits) > page.limit, offset=page.offset, limit=page.limit
    )
