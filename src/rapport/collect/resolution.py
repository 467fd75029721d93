"""Bulk identity resolution: one batch of touches → profiles created, linked, merged, traits applied.

Shared by the processor (a batch of pending events) and the importer (a batch of rows). A *touch* is one
piece of evidence: identifiers that belong to one person, optional traits and the time they were true.
The batch is resolved in memory after a handful of bulk reads (identities, suppressions, profiles), then
written with a handful of bulk statements, inside the caller's transaction (the caller commits).

Per touch, identifiers are taken in priority order (rules.priority). Each one either belongs to no profile
(it is attached, unless the kind's limit is reached), to a profile already in the group, or to another
profile, which joins the group when the workspace rules allow it: always when either side is anonymous
only (identify/alias of a visitor), otherwise only for a mergeable kind (or any kind on ``alias`` if
``alias`` is mergeable) and when the union stays within ``max_per_kind``. An identifier that cannot join is
dropped from the touch, never moved. The group then merges into its oldest profile: events, identities,
trait history move, traits merge last-write-wins by trait time, the loser stays as a tombstone with
``merged_into_id`` and a ``profile_merges`` row records it. A touch carrying any suppressed (erased)
identifier resolves to nothing.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, NamedTuple, cast

from sqlalchemy import JSON, Table, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from rapport.collect import codec
from rapport.collect import identity as ident
from rapport.db.base import UTCDateTime, pg_pick, pg_time, sqlite_time
from rapport.db.planner import one_of, same_workspace
from rapport.models import Event, Identity, Profile, ProfileMerge, Suppression, TraitChange

CHUNK = 2000
_PROFILES = cast(Table, Profile.__table__)
_IDENTITIES = cast(Table, Identity.__table__)
_HISTORY = cast(Table, TraitChange.__table__)
_SUPPRESSIONS = cast(Table, Suppression.__table__)
_MISSING = object()

# The batch's reads, built once with list parameters (``one_of``) and run on the connection: building an IN
# of N literals per call (one bound parameter and cache-key entry each) and the ORM's execution layer cost
# more Python than the queries themselves on a small real-time batch. Keyed by profile, so the tenant filter
# is ``same_workspace`` (never the index: stale statistics after a bulk load made PostgreSQL scan the
# workspace's profiles by it).
_SUPPRESSED = select(_SUPPRESSIONS.c.value_hash).where(
    _SUPPRESSIONS.c.workspace_id == bindparam("ws"),
    one_of(_SUPPRESSIONS.c.value_hash, "part"),
)
_OWNERS = select(_IDENTITIES.c.value, _IDENTITIES.c.profile_id).where(
    _IDENTITIES.c.workspace_id == bindparam("ws"),
    _IDENTITIES.c.kind == bindparam("kind"),
    one_of(_IDENTITIES.c.value, "part"),
)
_PROFILE_ROWS = select(
    _PROFILES.c.id,
    _PROFILES.c.traits,
    _PROFILES.c.trait_times,
    _PROFILES.c.email,
    _PROFILES.c.phone,
    _PROFILES.c.name,
    _PROFILES.c.timezone,
    _PROFILES.c.timezone_source,
    _PROFILES.c.first_seen_at,
    _PROFILES.c.last_seen_at,
    _PROFILES.c.merged_into_id,
).where(same_workspace(_PROFILES.c.workspace_id, bindparam("ws")), one_of(_PROFILES.c.id, "part"))
_IDENTITY_COUNTS = (
    select(_IDENTITIES.c.profile_id, _IDENTITIES.c.kind, func.count())
    .where(
        same_workspace(_IDENTITIES.c.workspace_id, bindparam("ws")),
        one_of(_IDENTITIES.c.profile_id, "part"),
    )
    .group_by(_IDENTITIES.c.profile_id, _IDENTITIES.c.kind)
)

#: Called after the SQL of one merge ran: (db, workspace_id, survivor_id, merged_id).
MergeHook = Callable[[Session, int, int, int], None]


@dataclass
class Touch:
    """Evidence about one person: normalised identifiers, traits true at ``at``."""

    identifiers: list[tuple[str, str]]
    at: datetime
    traits: dict[str, Any] | None = None
    alias: bool = False
    seen: bool = True
    event_id: int | None = None
    source: str = "event"
    timezone: str | None = None


@dataclass
class _Prof:
    id: int
    order: int
    traits: dict[str, Any]
    trait_times: dict[str, str]
    email: str | None
    phone: str | None
    name: str | None
    timezone: str | None
    timezone_source: str | None
    first_seen: datetime | None
    last_seen: datetime | None
    counts: Counter[str]
    new: bool = False
    dirty: bool = False
    seen_dirty: bool = False  # only first/last seen changed: a narrow UPDATE

    @property
    def anonymous_only(self) -> bool:
        return all(k == ident.ANONYMOUS_ID for k, n in self.counts.items() if n)


@dataclass
class Resolution:
    """What a batch did: the profile of each touch (None: suppressed or no identifier) and counts."""

    profile_ids: list[int | None]
    suppressed: list[bool]
    created: int = 0
    merges: list[tuple[int, int]] = field(default_factory=list)
    identities_added: int = 0
    identifiers_dropped: int = 0
    trait_changes: int = 0
    changed_traits: dict[int, set[str]] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    #: The updates of existing profiles, when the caller asked to write them itself (``defer_writes``).
    writes: ProfileWrites | None = None
    #: The batch's live profiles as it leaves them (traits, phone, time zone), by real id.
    facts: dict[int, ProfileFacts] = field(default_factory=dict)


class ProfileFacts(NamedTuple):
    """A profile's columns as a batch's resolution leaves them (what after-apply hooks would read back)."""

    id: int
    traits: dict[str, Any]
    phone: str | None
    timezone: str | None
    timezone_source: str | None


@dataclass
class ProfileWrites:
    """A batch's updates of existing profiles, written once by :meth:`flush`.

    ``full`` rows carry every column the resolution writes; ``seen`` rows only the first/last-seen times.
    ``computed`` holds patches of ``Profile.computed`` (top-level keys set) that a hook of the same batch
    hands over (:attr:`takes_computed`, PostgreSQL): they ride in the same statement, so a profile whose
    traits and computed traits both change is written once, not twice (each write of a profile row is a
    new row version and an entry in each of its indexes).
    """

    postgres: bool
    full: list[dict[str, Any]] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)
    computed: dict[int, dict[str, Any]] = field(default_factory=dict)
    flushed: bool = False

    @property
    def takes_computed(self) -> bool:
        """Whether :meth:`add_computed` may be used: before the flush, on PostgreSQL."""
        return self.postgres and not self.flushed

    def add_computed(self, patches: dict[int, dict[str, Any]]) -> None:
        """Hand over ``Profile.computed`` patches to write with the profile updates."""
        if not self.takes_computed:
            raise RuntimeError("computed patches ride along only before the flush, on PostgreSQL")
        for pid, patch in patches.items():
            self.computed.setdefault(pid, {}).update(patch)

    def flush(self, db: Session) -> None:
        """Write everything (once; later calls do nothing)."""
        if self.flushed:
            return
        self.flushed = True
        if not self.postgres:
            bulk_update(db, _PROFILES, self.seen)
            bulk_update(db, _PROFILES, self.full)
            return
        # one document of [id, kind, *full columns(, patch)]: kind 2 = full row, 1 = seen times only,
        # 0 = computed patch only; a column not written keeps its value
        patches, self.computed = self.computed, {}
        with_computed = bool(patches)
        doc: list[list[Any]] = []
        for kind, rows in ((2, self.full), (1, self.seen)):
            for row in rows:
                values = [_pg_time(row.get(c)) if c in _SEEN_COLUMNS else row.get(c) for c in _FULL_COLUMNS]
                patch = [patches.pop(row["id"], None)] if with_computed else []
                doc.append([row["id"], kind, *values, *patch])
        doc.extend([pid, 0, *[None] * len(_FULL_COLUMNS), patch] for pid, patch in patches.items())
        if doc:
            db.connection().exec_driver_sql(_pg_profile_update(with_computed), (codec.dumps_text(doc),))


def iso(at: datetime) -> str:
    """Return the fixed-width UTC ISO string kept in ``trait_times`` (compares as text)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def suppressed_identifiers(
    db: Session, *, workspace_id: int, identifiers: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Return which of ``identifiers`` are suppressed (erased) in the workspace."""
    by_hash = {ident.suppression_hash(workspace_id, k, v): (k, v) for k, v in identifiers}
    found: set[tuple[str, str]] = set()
    hashes = list(by_hash)
    conn = db.connection()
    for part in _chunks(hashes):
        rows = conn.execute(_SUPPRESSED, {"ws": workspace_id, "part": list(part)}).scalars()
        found.update(by_hash[h] for h in rows)
    return found


class BatchResolver:
    """Resolves one batch of touches inside the caller's transaction."""

    def __init__(
        self,
        db: Session,
        *,
        workspace_id: int,
        rules: ident.IdentityRules,
        now: datetime,
        merge_hooks: Sequence[MergeHook] = (),
        defer_writes: bool = False,
    ) -> None:
        self.db = db
        self.workspace_id = workspace_id
        self.rules = rules
        self.now = now
        self.merge_hooks = merge_hooks
        self.defer_writes = defer_writes
        self.owner: dict[tuple[str, str], int] = {}
        self.profs: dict[int, _Prof] = {}
        self.redirect: dict[int, int] = {}
        self._temp = itertools.count(-1, -1)
        self._order = itertools.count(1 << 62)
        self.new_order: list[int] = []
        self.new_identities: list[tuple[int, str, str, int | None]] = []
        self.history: list[dict[str, Any]] = []
        self.merge_ops: list[tuple[int, int, str, int | None]] = []
        self.result = Resolution(profile_ids=[], suppressed=[])

    # -- loading -------------------------------------------------------------------------------------------
    def _load(self, touches: Sequence[Touch]) -> set[tuple[str, str]]:
        wanted = {i for t in touches for i in t.identifiers}
        suppressed = suppressed_identifiers(self.db, workspace_id=self.workspace_id, identifiers=wanted)
        by_kind: dict[str, list[str]] = {}
        for kind, value in wanted - suppressed:
            by_kind.setdefault(kind, []).append(value)
        conn = self.db.connection()
        for kind, values in by_kind.items():
            for part in _chunks(values):
                rows = conn.execute(_OWNERS, {"ws": self.workspace_id, "kind": kind, "part": list(part)})
                for value, pid in rows:
                    self.owner[(kind, value)] = pid
        # identity counts matter only to a touch that may attach an identifier or merge profiles
        counts = not all(self._settled(touch) for touch in touches)
        self._load_profiles(set(self.owner.values()), counts=counts)
        return suppressed

    def _settled(self, touch: Touch) -> bool:
        """Whether every identifier of ``touch`` belongs to one and the same stored profile already (the
        common case: a known visitor or customer acting again): it attaches, links and merges nothing."""
        owners = {self.owner.get(key) for key in touch.identifiers}
        return None not in owners and len(owners) <= 1

    def _load_profiles(self, ids: set[int], *, counts: bool) -> None:
        pending = sorted(ids - set(self.profs))
        conn = self.db.connection()
        while pending:
            follow: set[int] = set()
            for part in _chunks(pending):
                params = {"ws": self.workspace_id, "part": list(part)}
                for r in conn.execute(_PROFILE_ROWS, params):
                    if r.merged_into_id is not None:
                        self.redirect[r.id] = r.merged_into_id
                        follow.add(r.merged_into_id)
                        continue
                    self.profs[r.id] = _Prof(
                        id=r.id,
                        order=r.id,
                        traits=dict(r.traits or {}),
                        trait_times=dict(r.trait_times or {}),
                        email=r.email,
                        phone=r.phone,
                        name=r.name,
                        timezone=r.timezone,
                        timezone_source=r.timezone_source,
                        first_seen=r.first_seen_at,
                        last_seen=r.last_seen_at,
                        counts=Counter(),
                    )
                if not counts:
                    continue
                for pid, kind, n in conn.execute(_IDENTITY_COUNTS, params):
                    if pid in self.profs:
                        self.profs[pid].counts[kind] += n
            pending = sorted(follow - set(self.profs))

    # -- in-memory resolution ------------------------------------------------------------------------------
    def find(self, pid: int) -> int:
        """Follow merges to the surviving profile id (temporary ids are negative)."""
        while pid in self.redirect:
            pid = self.redirect[pid]
        return pid

    def _new_profile(self) -> _Prof:
        pid = next(self._temp)
        prof = _Prof(
            id=pid,
            order=next(self._order),
            traits={},
            trait_times={},
            email=None,
            phone=None,
            name=None,
            timezone=None,
            timezone_source=None,
            first_seen=None,
            last_seen=None,
            counts=Counter(),
            new=True,
            dirty=True,
        )
        self.profs[pid] = prof
        self.new_order.append(pid)
        self.result.created += 1
        return prof

    def _exceeds(self, counts: Counter[str], extra: Counter[str]) -> bool:
        for kind, n in extra.items():
            limit = self.rules.limit(kind)
            if limit is not None and counts[kind] + n > limit:
                return True
        return False

    def _resolve_one(self, touch: Touch) -> _Prof | None:
        # The common case first: every identifier already belongs to one and the same profile (a known
        # visitor or customer acting again) — nothing to attach, link or merge.
        owner = self.owner
        known: int | None = None
        for key in touch.identifiers:
            pid = owner.get(key)
            if pid is None:
                break
            pid = self.find(pid)
            if known is None:
                known = pid
            elif pid != known:
                break
        else:
            if known is not None:
                return self.profs[known]
        group: list[_Prof] = []
        reasons: dict[int, str] = {}
        counts: Counter[str] = Counter()
        unowned: list[tuple[str, str]] = []
        for kind, value in touch.identifiers:
            pid = self.owner.get((kind, value))
            if pid is None:
                if self._exceeds(counts, Counter({kind: 1})):
                    self.result.identifiers_dropped += 1
                    continue
                counts[kind] += 1
                unowned.append((kind, value))
                continue
            prof = self.profs[self.find(pid)]
            if any(prof is g for g in group):
                continue
            if group or unowned:
                group_anonymous = all(k == ident.ANONYMOUS_ID for k, n in counts.items() if n)
                allowed = (
                    prof.anonymous_only
                    or group_anonymous
                    or self.rules.may_merge(kind)
                    or (touch.alias and self.rules.may_merge(ident.ALIAS))
                )
                if not allowed or self._exceeds(counts, prof.counts):
                    self.result.identifiers_dropped += 1
                    continue
            reason = ident.ALIAS if touch.alias else ident.base_kind(kind)
            if group:
                reasons[prof.id] = reason
                reasons.setdefault(group[0].id, reason)  # the first link explains the anchor's merge too
            group.append(prof)
            counts.update(prof.counts)
        if not group:
            if not unowned:
                return None
            target = self._new_profile()
        else:
            group.sort(key=lambda p: p.order)
            target = group[0]
            for other in group[1:]:
                self._merge(target, other, reason=reasons[other.id], event_id=touch.event_id)
        for kind, value in unowned:
            self.owner[(kind, value)] = target.id
            target.counts[kind] += 1
            self.new_identities.append((target.id, kind, value, touch.event_id))
            if kind == ident.EMAIL and target.email is None:
                target.email, target.dirty = value, True
            elif kind == ident.PHONE and target.phone is None:
                target.phone, target.dirty = value, True
        return target

    def _merge(self, survivor: _Prof, loser: _Prof, *, reason: str, event_id: int | None) -> None:
        for name, value in loser.traits.items():
            when = loser.trait_times.get(name, "")
            current = survivor.trait_times.get(name)
            if current is None or when >= current:
                self._set_trait(survivor, name, value, when, source="merge", event_id=event_id)
        survivor.counts.update(loser.counts)
        survivor.email = survivor.email or loser.email
        survivor.phone = survivor.phone or loser.phone
        survivor.name = ident.display_name(survivor.traits) or survivor.name or loser.name
        if survivor.timezone is None and loser.timezone is not None:
            survivor.timezone, survivor.timezone_source = loser.timezone, loser.timezone_source
        survivor.first_seen = _min(survivor.first_seen, loser.first_seen)
        survivor.last_seen = _max(survivor.last_seen, loser.last_seen)
        survivor.dirty = True
        self.redirect[loser.id] = survivor.id
        del self.profs[loser.id]
        if not loser.new:
            self.merge_ops.append((survivor.id, loser.id, reason, event_id))

    def _set_trait(
        self, prof: _Prof, name: str, value: Any, when: str, *, source: str, event_id: int | None
    ) -> None:
        previous = prof.traits.get(name, _MISSING)
        prof.trait_times[name] = when
        prof.dirty = True
        if previous is not _MISSING and previous == value:
            return
        prof.traits[name] = value
        self.result.changed_traits.setdefault(prof.id, set()).add(name)
        if previous is _MISSING and source == "import":
            return  # a bulk import's first values are not history (trait_times says when); changes are
        self.history.append(
            {
                "profile_id": prof.id,
                "name": name[:200],
                "value": value,
                "previous": None if previous is _MISSING else previous,
                "set_at": datetime.fromisoformat(when) if when else self.now,
                "source": source,
                "source_event_id": event_id,
            }
        )

    def _apply(self, prof: _Prof, touch: Touch) -> None:
        if touch.traits:
            when = iso(touch.at)
            for name, value in touch.traits.items():
                current = prof.trait_times.get(name)
                if current is not None and when < current:
                    continue  # an older value loses (last write wins by event time)
                if touch.source == "import" and prof.traits.get(name, _MISSING) == value:
                    continue  # re-importing the same value changes nothing, not even its time
                if current == when and prof.traits.get(name, _MISSING) == value:
                    continue
                self._set_trait(prof, name, value, when, source=touch.source, event_id=touch.event_id)
                if name == ident.EMAIL:
                    prof.email = _trait_identifier(touch, ident.EMAIL, value, self.rules) or prof.email
                elif name == ident.PHONE:
                    prof.phone = _trait_identifier(touch, ident.PHONE, value, self.rules) or prof.phone
            name_now = ident.display_name(prof.traits)
            if name_now and name_now != prof.name:
                prof.name, prof.dirty = name_now, True
            tz = prof.traits.get("timezone")
            if isinstance(tz, str) and tz and tz[:64] != prof.timezone:
                prof.timezone, prof.timezone_source, prof.dirty = tz[:64], "trait", True
        if touch.timezone and prof.timezone_source in (None, "context") and prof.timezone != touch.timezone:
            prof.timezone, prof.timezone_source, prof.dirty = touch.timezone[:64], "context", True
        if touch.seen:
            first = _min(prof.first_seen, touch.at)
            last = _max(prof.last_seen, touch.at)
            if first != prof.first_seen or last != prof.last_seen:
                prof.first_seen, prof.last_seen, prof.seen_dirty = first, last, True

    def resolve(self, touches: Sequence[Touch]) -> Resolution:
        """Resolve every touch and write the outcome; returns real profile ids in touch order."""
        suppressed = self._load(touches)
        chosen: list[int | None] = []
        for touch in touches:
            if any(i in suppressed for i in touch.identifiers):
                chosen.append(None)
                self.result.suppressed.append(True)
                continue
            self.result.suppressed.append(False)
            prof = self._resolve_one(touch)
            if prof is None:
                chosen.append(None)
                continue
            self._apply(prof, touch)
            chosen.append(prof.id)
        real = self._flush()
        self.result.profile_ids = [None if c is None else real(c) for c in chosen]
        changed: dict[int, set[str]] = {}
        for pid, names in self.result.changed_traits.items():
            changed.setdefault(real(pid), set()).update(names)
        self.result.changed_traits = changed
        self.result.touched = {p for p in self.result.profile_ids if p is not None}
        for prof in self.profs.values():
            if self.find(prof.id) == prof.id:
                pid = real(prof.id)
                if pid in self.result.touched:
                    self.result.facts[pid] = ProfileFacts(
                        pid, prof.traits, prof.phone, prof.timezone, prof.timezone_source
                    )
        return self.result

    # -- writing -------------------------------------------------------------------------------------------
    def _flush(self) -> Callable[[int], int]:
        db, ws, now = self.db, self.workspace_id, self.now
        real_of: dict[int, int] = {}

        def real(pid: int) -> int:
            pid = self.find(pid)
            return real_of.get(pid, pid)

        fresh = [self.profs[p] for p in self.new_order if p in self.profs]
        if fresh:
            new_ids = allocate_ids(db, _PROFILES, len(fresh))
            rows = [
                {"id": new_id, "workspace_id": ws, **_profile_values(p, now), "created_at": now}
                for p, new_id in zip(fresh, new_ids, strict=True)
            ]
            bulk_insert(db, _PROFILES, rows)
            for p, new_id in zip(fresh, new_ids, strict=True):
                real_of[p.id] = new_id
        for survivor, loser, reason, event_id in self.merge_ops:
            self._write_merge(real(survivor), loser, reason, event_id)
        if self.new_identities:
            bulk_insert(
                db,
                _IDENTITIES,
                [
                    {
                        "workspace_id": ws,
                        "profile_id": real(pid),
                        "kind": kind,
                        "value": value,
                        "source_event_id": event_id,
                        "created_at": now,
                    }
                    for pid, kind, value, event_id in self.new_identities
                ],
            )
            self.result.identities_added += len(self.new_identities)
        live = [p for p in self.profs.values() if not p.new and self.find(p.id) == p.id]
        writes = ProfileWrites(postgres=db.get_bind().dialect.name == "postgresql")
        writes.seen = [
            {"id": p.id, "first_seen_at": p.first_seen, "last_seen_at": p.last_seen, "updated_at": now}
            for p in live
            if p.seen_dirty and not p.dirty
        ]
        writes.full = [{"id": p.id, **_profile_values(p, now)} for p in live if p.dirty]
        if self.defer_writes:
            self.result.writes = writes
        else:
            writes.flush(db)
        if self.history:
            for row in self.history:
                row["profile_id"] = real(row["profile_id"])
                row["workspace_id"] = ws
                row["recorded_at"] = now
            bulk_insert(db, _HISTORY, self.history)
            self.result.trait_changes += len(self.history)
        return real

    def _write_merge(self, survivor: int, loser: int, reason: str, event_id: int | None) -> None:
        db, ws = self.db, self.workspace_id
        moved_events = _rowcount(
            db.execute(
                update(Event)
                .where(Event.workspace_id == ws, Event.profile_id == loser)
                .values(profile_id=survivor)
                .execution_options(synchronize_session=False)
            )
        )
        moved_identities = _rowcount(
            db.execute(
                update(Identity)
                .where(same_workspace(Identity.workspace_id, ws), Identity.profile_id == loser)
                .values(profile_id=survivor)
                .execution_options(synchronize_session=False)
            )
        )
        db.execute(
            update(TraitChange)
            .where(same_workspace(TraitChange.workspace_id, ws), TraitChange.profile_id == loser)
            .values(profile_id=survivor)
            .execution_options(synchronize_session=False)
        )
        db.execute(
            update(Profile)
            .where(Profile.workspace_id == ws, Profile.merged_into_id == loser)
            .values(merged_into_id=survivor)
            .execution_options(synchronize_session=False)
        )
        db.execute(
            update(Profile)
            .where(Profile.workspace_id == ws, Profile.id == loser)
            .values(
                merged_into_id=survivor,
                traits={},
                trait_times={},
                email=None,
                phone=None,
                name=None,
                updated_at=self.now,
            )
            .execution_options(synchronize_session=False)
        )
        db.execute(
            insert(ProfileMerge).values(
                workspace_id=ws,
                survivor_id=survivor,
                merged_id=loser,
                reason=f"identifier:{reason}",
                source_event_id=event_id,
                details={"moved_events": moved_events, "moved_identities": moved_identities},
                created_at=self.now,
            )
        )
        for hook in self.merge_hooks:
            hook(db, ws, survivor, loser)
        self.result.merges.append((survivor, loser))


def _profile_values(p: _Prof, now: datetime) -> dict[str, Any]:
    """The profile columns the resolution writes (a new row's and a changed row's alike)."""
    return {
        "traits": p.traits,
        "trait_times": p.trait_times,
        "email": p.email,
        "phone": p.phone,
        "name": p.name,
        "timezone": p.timezone,
        "timezone_source": p.timezone_source,
        "first_seen_at": p.first_seen,
        "last_seen_at": p.last_seen,
        "updated_at": now,
    }


#: The columns of a full profile update (:func:`_profile_values`), in the order of :class:`ProfileWrites`.
_FULL_COLUMNS = (
    "traits",
    "trait_times",
    "email",
    "phone",
    "name",
    "timezone",
    "timezone_source",
    "first_seen_at",
    "last_seen_at",
    "updated_at",
)
#: The seen times: the columns a seen-only row writes, and the time columns of a full one.
_SEEN_COLUMNS = frozenset({"first_seen_at", "last_seen_at", "updated_at"})


@cache
def _pg_profile_update(with_computed: bool) -> str:
    """The one UPDATE of :meth:`ProfileWrites.flush` (``computed`` set only ``with_computed``)."""
    picks = ["(r->>0)::bigint AS id", "(r->>1)::int AS kind"]
    sets = []
    for i, c in enumerate(_FULL_COLUMNS, start=2):
        picks.append(f"{pg_pick(_PROFILES, c, i)} AS {c}")
        least = 1 if c in _SEEN_COLUMNS else 2
        sets.append(f"{c} = CASE WHEN v.kind >= {least} THEN v.{c} ELSE t.{c} END")
    if with_computed:
        n = len(_FULL_COLUMNS) + 2
        picks.append(f"CASE WHEN jsonb_typeof(r->{n}) = 'object' THEN r->{n} END AS patch")
        sets.append("computed = CASE WHEN v.patch IS NULL THEN t.computed ELSE t.computed || v.patch END")
    # Column names come from the table's metadata; every value is bound (one JSON document, read as jsonb:
    # each ``->`` on a json value parses the row's text again, which cost more than the writes themselves).
    return (
        f"UPDATE profiles AS t SET {', '.join(sets)} "  # noqa: S608
        f"FROM (SELECT {', '.join(picks)} FROM jsonb_array_elements(%s::jsonb) AS r) AS v WHERE t.id = v.id"
    )


def _sqlite_time(value: datetime | None) -> str | None:
    return None if value is None else sqlite_time(value)


def bulk_insert(db: Session, table: Table, rows: Sequence[dict[str, Any]], *, suffix: str = "") -> None:
    """Insert ``rows`` (same keys each) with one executemany of values serialised here, not per value by
    SQLAlchemy's types: JSON as text, UTC timestamps as SQLite text or aware datetimes for PostgreSQL.

    The bulk paths' hot loop; ``suffix`` may add a constant ``ON CONFLICT …`` clause. On PostgreSQL
    rows without a suffix go through COPY.
    """
    if not rows:
        return
    postgres = db.get_bind().dialect.name == "postgresql"
    columns = list(rows[0])
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    time_cols = {c for c in columns if isinstance(table.c[c].type, UTCDateTime)}
    if postgres:
        marks = ", ".join("%s::jsonb" if c in json_cols else "%s" for c in columns)
    else:
        marks = ", ".join("?" for _ in columns)
    # Table and column names come from the ORM metadata; every value is a bound parameter.
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks}) {suffix}"  # noqa: S608
    dumps = codec.dumps_text
    params = []
    for row in rows:
        values: list[Any] = []
        for column in columns:
            value = row[column]
            if column in json_cols:
                value = dumps(value)
            elif column in time_cols and value is not None:
                value = value if postgres else _sqlite_time(value)
            values.append(value)
        params.append(tuple(values))
    if postgres and not suffix:
        # COPY costs the client a fraction of binding each row's parameters (B3).
        raw = db.connection().connection.driver_connection
        assert raw is not None
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for values_row in params:
                copy.write_row(values_row)
        return
    db.connection().exec_driver_sql(sql, params)


def bulk_update(db: Session, table: Table, rows: Sequence[dict[str, Any]], *, key: str = "id") -> None:
    """Update many rows by ``key`` (same columns each; values serialised here, as :func:`bulk_insert` does).

    PostgreSQL: one statement over one JSON document of rows (``jsonb_array_elements``), so a batch costs
    one round trip and one plan instead of one per row; SQLite: one executemany of driver-ready values,
    without SQLAlchemy's per-value type processing.
    """
    if not rows:
        return
    postgres = db.get_bind().dialect.name == "postgresql"
    columns = [c for c in rows[0] if c != key]
    json_cols = {c for c in columns if isinstance(table.c[c].type, JSON)}
    time_cols = {c for c in columns if isinstance(table.c[c].type, UTCDateTime)}
    conn = db.connection()
    # Table and column names come from the ORM metadata; every value is bound.
    if postgres:
        picks = [f"{pg_pick(table, c, i)} AS {c}" for i, c in enumerate([key, *columns])]
        sql = (
            f"UPDATE {table.name} AS t SET {', '.join(f'{c} = v.{c}' for c in columns)} "  # noqa: S608
            f"FROM (SELECT {', '.join(picks)} FROM jsonb_array_elements(%s::jsonb) AS r) AS v "
            f"WHERE t.{key} = v.{key}"
        )
        doc = [[row[key]] + [_pg_time(row[c]) if c in time_cols else row[c] for c in columns] for row in rows]
        conn.exec_driver_sql(sql, (codec.dumps_text(doc),))
        return
    sql = f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in columns)} WHERE {key} = ?"  # noqa: S608
    dumps = codec.dumps_text
    params = [
        (
            *(
                dumps(row[c]) if c in json_cols else _sqlite_time(row[c]) if c in time_cols else row[c]
                for c in columns
            ),
            row[key],
        )
        for row in rows
    ]
    conn.exec_driver_sql(sql, params)


def _pg_time(value: datetime | None) -> str | None:
    return None if value is None else pg_time(value)


def allocate_ids(db: Session, table: Table, count: int) -> list[int]:
    """Reserve ``count`` primary keys of ``table`` for an executemany insert without RETURNING.

    PostgreSQL draws them from the column's sequence; SQLite continues after the largest rowid, which is
    safe because the caller's transaction holds the database's write lock (BEGIN IMMEDIATE).
    """
    if count <= 0:
        return []
    if db.get_bind().dialect.name == "postgresql":
        rows = db.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count},
        ).scalars()
        return sorted(int(r) for r in rows)
    top = db.execute(select(func.max(table.c.id))).scalar() or 0
    return list(range(int(top) + 1, int(top) + 1 + count))


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _trait_identifier(touch: Touch, kind: str, value: Any, rules: ident.IdentityRules) -> str | None:
    """The normalised email/phone of a trait: the touch's identifier of that kind, which was normalised
    from this very trait when the touch was built (parsing a phone number again costs ~50 µs)."""
    for have, normalised in touch.identifiers:
        if have == kind:
            return normalised
    return _normalised(kind, value, rules)


def _normalised(kind: str, value: Any, rules: ident.IdentityRules) -> str | None:
    try:
        return ident.normalize(kind, value, rules)
    except ident.InvalidIdentifier:
        return None


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _max(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def resolve_batch(
    db: Session,
    *,
    workspace_id: int,
    rules: ident.IdentityRules,
    touches: Sequence[Touch],
    now: datetime,
    merge_hooks: Sequence[MergeHook] = (),
    defer_writes: bool = False,
) -> Resolution:
    """Resolve ``touches`` in the caller's transaction (see the module docstring). With ``defer_writes``
    the updates of existing profiles are left in ``Resolution.writes`` for the caller to flush (after its
    hooks have added their computed patches); new profiles, identities, merges and history are written."""
    resolver = BatchResolver(
        db,
        workspace_id=workspace_id,
        rules=rules,
        now=now,
        merge_hooks=merge_hooks,
        defer_writes=defer_writes,
    )
    return resolver.resolve(touches)
