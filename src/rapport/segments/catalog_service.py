"""Build a workspace's ``Catalog`` from its real data: traits sampled from profiles, events, stores, topics,
segments and computed traits.

Two flavours: ``build_catalog`` for checking what a marketer writes (names and types, with suggestions), and
``compile_catalog`` for compiling saved segments (only what changes the SQL: where computed fields live,
stores, opt-out topics) — cheap enough to build for every processed batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select, true, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from rapport.models import Campaign, ComputedTrait, Event, Profile, ProfileScores, Segment, Topic, Workspace
from rapport.process import score_keys
from rapport.segments.catalog import Catalog, FieldType

SAMPLE = 500
#: Fields every profile may be asked about, whatever the sample shows.
_KNOWN_TRAITS: Mapping[str, FieldType] = {
    "email": "string",
    "phone": "string",
    "latitude": "number",
    "longitude": "number",
}
_FEEDBACK = [
    f"{channel}_{action}"
    for channel in ("email", "sms", "push", "inapp", "webhook")
    for action in ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed")
]


def value_type(value: Any) -> FieldType | None:
    """Return the catalogue type of one JSON value (None for null and objects)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, date | datetime):
        return "date"
    if isinstance(value, str):
        if len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
            try:
                date.fromisoformat(value[:10])
                return "date"
            except ValueError:
                return "string"
        return "string"
    return None


def infer_types(documents: Iterable[Mapping[str, Any]]) -> dict[str, FieldType]:
    """Return each key's most frequent type over ``documents`` (keys starting with ``_`` are internal)."""
    seen: dict[str, Counter[FieldType]] = {}
    for document in documents:
        for key, value in (document or {}).items():
            kind = value_type(value)
            if kind is None or key.startswith("_"):
                continue
            seen.setdefault(key, Counter())[kind] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in seen.items()}


def stores_of(settings: Mapping[str, Any] | None) -> dict[str, tuple[float, float]]:
    """Return the stores of a workspace's settings by name: ``{name, lat|latitude, lon|longitude}``."""
    found: dict[str, tuple[float, float]] = {}
    for store in (settings or {}).get("stores") or []:
        if not isinstance(store, Mapping):
            continue
        name, lat, lon = (
            store.get("name"),
            store.get("lat", store.get("latitude")),
            store.get("lon", store.get("longitude")),
        )
        if isinstance(name, str) and isinstance(lat, int | float) and isinstance(lon, int | float):
            found[name] = (float(lat), float(lon))
    return found


def _event_names(db: Session, workspace_id: int) -> set[str]:
    """Distinct names of linked events by a loose index scan on (workspace_id, event, …): one seek per name,
    all in one recursive statement (one round trip)."""
    linked = Event.profile_id.is_not(None)
    first = select(func.min(Event.event).label("name")).where(Event.workspace_id == workspace_id, linked)
    names = first.cte("names", recursive=True)
    following = (
        select(func.min(Event.event))
        .where(Event.workspace_id == workspace_id, linked, Event.event > names.c.name)
        .scalar_subquery()
    )
    names = names.union_all(select(following).where(names.c.name.is_not(None)))
    query = select(names.c.name).where(names.c.name.is_not(None)).limit(5000)
    return set(db.scalars(query))


#: A JSON string that reads as a date (``value_type``): YYYY-MM-DD, maybe followed by a time.
_SQLITE_DATE = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]*"
_PG_DATE = "^[0-9]{4}-[01][0-9]-[0-3][0-9]"
_KINDS: Mapping[str, FieldType] = {
    "true": "boolean", "false": "boolean", "boolean": "boolean", "integer": "number", "real": "number",
    "number": "number", "array": "list", "text": "string", "string": "string",
}  # fmt: skip


def sampled_types(db: Session, workspace_id: int, column: str, size: int = SAMPLE) -> dict[str, FieldType]:
    """``infer_types`` over the ``size`` newest live profiles' ``column`` (traits or computed; ``scores``: the
    newest rows of ``ProfileScores``), in SQL.

    The database walks the JSON and returns one row per (key, type): no documents cross the wire. For traits,
    the keys of nested objects come too, as dotted names (``address.city``; one level).
    """
    if column == "scores":
        held = ProfileScores.__table__.alias("sample_src")
        newest = select(held.c.scores.label("doc")).where(held.c.workspace_id == workspace_id)
        newest = newest.order_by(held.c.profile_id.desc())
    else:
        table = Profile.__table__.alias("sample_src")
        newest = select(table.c[column].label("doc")).where(
            table.c.workspace_id == workspace_id, table.c.merged_into_id.is_(None)
        )
        newest = newest.order_by(table.c.id.desc())
    sample = newest.limit(size).subquery("s")
    postgres = db.get_bind().dialect.name == "postgresql"

    def typed(each: Any, kind: ColumnElement[Any], key: ColumnElement[Any], source: Any) -> Any:
        if postgres:
            text = each.c.value.op("#>>")(literal_column("'{}'::text[]"))
            datey = and_(kind == "string", text.op("~")(_PG_DATE))
        else:
            datey = and_(kind == "text", each.c.value.op("GLOB")(_SQLITE_DATE))
        is_date = case((datey, 1), else_=0)
        return select(key.label("key"), kind.label("kind"), is_date.label("is_date")).select_from(source)

    if postgres:
        top = func.jsonb_each(sample.c.doc).table_valued("key", "value").lateral("j")
        top_kind: ColumnElement[Any] = func.jsonb_typeof(top.c.value)
        objects = case((top_kind == "object", top.c.value), else_=literal_column("'{}'::jsonb"))
        inner = func.jsonb_each(objects).table_valued("key", "value").lateral("k")
        inner_kind: ColumnElement[Any] = func.jsonb_typeof(inner.c.value)
    else:
        top = func.json_each(sample.c.doc).table_valued("key", "value", "type").alias("j")
        top_kind = top.c.type
        inner = func.json_each(top.c.value).table_valued("key", "value", "type").alias("k")
        inner_kind = inner.c.type
    parts = [typed(top, top_kind, top.c.key, sample.join(top, true()))]
    if column == "traits":
        nested_key = top.c.key.concat(".").concat(inner.c.key)
        nested = typed(inner, inner_kind, nested_key, sample.join(top, true()).join(inner, true()))
        parts.append(nested.where(top_kind == "object"))
    found = union_all(*parts).subquery("found")
    rows = db.execute(
        select(found.c.key, found.c.kind, found.c.is_date, func.count())
        .group_by(found.c.key, found.c.kind, found.c.is_date)
        .order_by(found.c.key)
    )
    seen: dict[str, Counter[FieldType]] = {}
    for key, kind, date_like, n in rows:
        kind_of = "date" if date_like else _KINDS.get(kind)
        if kind_of is None or key.startswith("_"):
            continue
        seen.setdefault(key, Counter())[kind_of] += n
    return {key: counts.most_common(1)[0][0] for key, counts in seen.items()}


def _computed(db: Session, workspace_id: int, size: int) -> dict[str, FieldType]:
    computed = sampled_types(db, workspace_id, "computed", size)
    for name in db.scalars(
        select(ComputedTrait.name).where(
            ComputedTrait.workspace_id == workspace_id, ComputedTrait.archived_at.is_(None)
        )
    ):
        computed.setdefault(name, "number")
    return computed


def _topics(db: Session, workspace_id: int) -> tuple[list[str], list[str]]:
    rows = db.execute(
        select(Topic.key, Topic.opt_in).where(Topic.workspace_id == workspace_id, Topic.archived_at.is_(None))
    ).all()
    return [key for key, _ in rows], [key for key, opt_in in rows if not opt_in]


def build_catalog(db: Session, *, workspace_id: int, sample: int = SAMPLE) -> Catalog:
    """The catalogue a marketer's segment is checked against (names, types, suggestions)."""
    traits = {**_KNOWN_TRAITS, **sampled_types(db, workspace_id, "traits", sample)}
    computed = _computed(db, workspace_id, sample)
    for name in computed:
        traits.pop(name, None)
    topics, opt_out = _topics(db, workspace_id)
    settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id))
    segments = db.scalars(
        select(Segment.name).where(Segment.workspace_id == workspace_id, Segment.archived_at.is_(None))
    )
    events = _event_names(db, workspace_id)
    campaigns = set(db.scalars(select(Campaign.name).where(Campaign.workspace_id == workspace_id)))
    scores = {**score_keys.TYPES, **sampled_types(db, workspace_id, "scores", sample)}
    for name in scores:
        traits.pop(name, None)
    return Catalog(
        # a workspace with no data yet checks no names: a segment may be written before the data arrives
        traits=traits if len(traits) > len(_KNOWN_TRAITS) else None,
        computed=computed,
        scores=scores,
        events=(events | set(_FEEDBACK)) if events else None,
        stores=stores_of(settings),
        segments=set(segments),
        topics=topics,
        opt_out_topics=opt_out,
        # like traits: a workspace without campaigns yet checks no campaign names
        campaigns=campaigns or None,
    )


def compile_catalog(db: Session, *, workspace_id: int) -> Catalog:
    """The catalogue saved segments are compiled with: computed names, stores, opt-out topics; no checks."""
    _topics_list, opt_out = _topics(db, workspace_id)
    settings = db.scalar(select(Workspace.settings).where(Workspace.id == workspace_id))
    return Catalog(
        traits=None,
        computed=_computed(db, workspace_id, 200),
        scores={**score_keys.TYPES, **sampled_types(db, workspace_id, "scores", 200)},
        stores=stores_of(settings),
        opt_out_topics=opt_out,
    )
