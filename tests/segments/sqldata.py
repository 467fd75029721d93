"""Test data for the compiler: ``ProfileFacts`` written straight into the tables with SQLAlchemy Core.

Fast on purpose (test data, not the feature path): profiles, events, message feedback events, subscriptions
and segment memberships in the shapes the real services write them.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert, select
from sqlalchemy.sql.elements import ColumnElement

from rapport.models import Event, Profile, ProfileScores, Segment, SegmentMember, Subscription
from rapport.models.event import PROCESSED
from rapport.segments import Catalog, Node, ProfileFacts, portable
from rapport.segments.compiler import LATITUDE, LONGITUDE, Scope, compile_segment

PROFILES = cast(Table, Profile.__table__)
SCORES = cast(Table, ProfileScores.__table__)
EVENTS = cast(Table, Event.__table__)
SUBSCRIPTIONS = cast(Table, Subscription.__table__)
MEMBERS = cast(Table, SegmentMember.__table__)
SEGMENTS = cast(Table, Segment.__table__)
CAMPAIGN_IDS = {"Spring sale": 11, "Winter": 12}


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def make_segments(conn: Connection, workspace_id: int, names: list[str]) -> dict[str, int]:
    """Create empty segments (for membership conditions) and return their ids by name."""
    ids: dict[str, int] = {}
    for name in names:
        ids[name] = conn.execute(
            insert(SEGMENTS)
            .values(workspace_id=workspace_id, name=name, ast={}, text="", status="active")
            .returning(SEGMENTS.c.id)
        ).scalar_one()
    return ids


def load(
    conn: Connection,
    workspace_id: int,
    facts: list[ProfileFacts],
    *,
    catalog: Catalog,
    segment_ids: dict[str, int],
    first_id: int,
) -> list[ProfileFacts]:
    """Insert ``facts`` with ids from ``first_id``; return them with ``profile_id`` set to the stored id."""
    stored: list[ProfileFacts] = []
    profiles, scores, events, subscriptions, members = [], [], [], [], []
    for n, fact in enumerate(facts):
        pid = first_id + n
        traits: dict[str, Any] = {}
        computed: dict[str, Any] = {}
        score: dict[str, Any] = {}
        for name, value in fact.traits.items():
            info = catalog.field_info(name)
            source = info.source if info is not None else "trait"
            target = {"trait": traits, "computed": computed, "score": score}[source]
            target[name] = _json(value)
        if fact.location is not None:
            traits[LATITUDE], traits[LONGITUDE] = fact.location
        profiles.append(
            {
                "id": pid,
                "workspace_id": workspace_id,
                "traits": traits,
                "computed": computed,
                "timezone": fact.timezone,
            }
        )
        if score:
            scores.append({"profile_id": pid, "workspace_id": workspace_id, "scores": score})
        for k, e in enumerate(fact.events):
            events.append(_event(workspace_id, pid, f"e{pid}-{k}", e.name, e.timestamp, dict(e.properties)))
        for k, m in enumerate(fact.messages):
            props: dict[str, Any] = {"channel": m.channel, "message_id": f"m{pid}-{k}"}
            if m.campaign is not None:
                props["campaign_id"] = CAMPAIGN_IDS[m.campaign]
            events.append(
                _event(workspace_id, pid, f"m{pid}-{k}", f"{m.channel}_{m.action}", m.timestamp, props)
            )
        for (channel, topic), state in fact.subscriptions.items():
            subscriptions.append(
                {
                    "workspace_id": workspace_id,
                    "profile_id": pid,
                    "channel": channel,
                    "topic": topic or "",
                    "state": state,
                }
            )
        for name in fact.segments:
            members.append({"workspace_id": workspace_id, "segment_id": segment_ids[name], "profile_id": pid})
        stored.append(dataclasses.replace(fact, profile_id=str(pid)))
    for table, rows in (
        (PROFILES, profiles),
        (SCORES, scores),
        (EVENTS, events),
        (SUBSCRIPTIONS, subscriptions),
        (MEMBERS, members),
    ):
        if rows:
            conn.execute(insert(table), rows)
    return stored


def _event(
    workspace_id: int, pid: int, message_id: str, name: str, at: datetime, properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "message_id": message_id,
        "type": "track",
        "event": name,
        "profile_id": pid,
        "timestamp": at,
        "properties": properties,
        "state": PROCESSED,
    }


def matching_ids(conn: Connection, node: Node, scope: Scope, ids: list[int] | None = None) -> set[int]:
    """Run the compiled segment and return the ids of the matching profiles of the workspace."""
    portable.prepare(conn)
    p = PROFILES.alias("p")
    condition: ColumnElement[Any] = compile_segment(node, scope=scope, profiles=p)
    query = select(p.c.id).where(p.c.workspace_id == scope.workspace_id, condition)
    if ids is not None:
        query = query.where(p.c.id.in_(ids))
    return set(conn.execute(query).scalars())
