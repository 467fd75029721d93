"""Rule-block conditions: segment-language text decided for one recipient at render time.

A variant's condition is written in the segment language (docs/segment-language.md) and parsed by
``rapport.segments.parser``; it is decided by ``rapport.segments.evaluator`` over the recipient's facts
(traits, computed traits and scores, events, consent, segment memberships, location). Four more fields come
from the render itself, so a block can depend on how and when the message goes out:

==============  =======  ==========================================================================
field           type     value
==============  =======  ==========================================================================
``channel``     string   the template's channel: ``email``, ``sms``, ``push``, ``inapp``, ``webhook``
``local_hour``  number   the hour (0-23) in the recipient's timezone at render time
``time_of_day`` string   ``morning`` (5-11), ``afternoon`` (12-16), ``evening`` (17-21), ``night``
``weekday``     string   the local day: ``monday`` … ``sunday``
==============  =======  ==========================================================================

These names shadow profile traits of the same name inside block conditions only.

    node = parse_condition('channel = "sms" and local_hour >= 18', catalog=catalog)
    predicate = ConditionPredicate(facts, now=now, catalog=compile_catalog, seed="template-7")
    predicate(node, render_context)   # True / False; the block renderer calls it per variant
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rapport.segments.ast import ACTIONS, CHANNELS, Node
from rapport.segments.catalog import Catalog, FieldType
from rapport.segments.dependencies import Dependencies, dependencies
from rapport.segments.evaluator import EventFact, MessageFact, ProfileFacts, evaluate
from rapport.segments.parser import parse

RENDER_FIELDS: Mapping[str, FieldType] = {
    "channel": "string",
    "local_hour": "number",
    "time_of_day": "string",
    "weekday": "string",
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def condition_catalog(catalog: Catalog) -> Catalog:
    """Return ``catalog`` with the render fields added, so conditions may name them when names are checked."""
    if catalog.traits is None:
        return catalog
    return dataclasses.replace(catalog, traits={**catalog.traits, **RENDER_FIELDS})


def parse_condition(text: str, *, catalog: Catalog | None = None) -> Node:
    """Parse one condition (raises ``SegmentError`` with line and column); checked against ``catalog``."""
    return parse(text, catalog=condition_catalog(catalog) if catalog is not None else None)


def render_fields(context: Mapping[str, Any]) -> dict[str, Any]:
    """Return the render fields of a render context (see the module docstring)."""
    recipient = context.get("recipient") or {}
    now = context.get("now")
    fields: dict[str, Any] = {
        "channel": recipient.get("channel") if isinstance(recipient, Mapping) else None,
        "local_hour": context.get("local_hour"),
        "time_of_day": context.get("time_of_day"),
    }
    if isinstance(now, datetime):
        fields["weekday"] = WEEKDAYS[now.weekday()]
    return fields


def needs(nodes: Iterable[Node]) -> Dependencies:
    """Return what a set of conditions reads, so only those facts are loaded for each recipient."""
    found = [dependencies(node) for node in nodes]
    return Dependencies(
        fields=frozenset().union(*(d.fields for d in found)),
        events=frozenset().union(*(d.events for d in found)),
        messages=any(d.messages for d in found),
        subscriptions=any(d.subscriptions for d in found),
        segments=frozenset().union(*(d.segments for d in found)),
        location=any(d.location for d in found),
        by_time=any(d.by_time for d in found),
    )


def engagements(events: Iterable[EventFact]) -> tuple[MessageFact, ...]:
    """Return the message engagements among a profile's events (``email_opened``, ``sms_delivered``, …)."""
    found: list[MessageFact] = []
    for event in events:
        channel, _, action = event.name.partition("_")
        if channel in CHANNELS and action in ACTIONS:
            campaign = event.properties.get("campaign_name") or event.properties.get("campaign")
            found.append(MessageFact(channel, action, event.timestamp, str(campaign) if campaign else None))
    return tuple(found)


class ConditionPredicate:
    """The ``Predicate`` that ``rapport.personalize.render_layout`` calls for each variant of each block."""

    def __init__(self, facts: ProfileFacts, *, now: datetime, catalog: Catalog | None, seed: str) -> None:
        self.facts = facts
        self.now = now
        self.catalog = catalog
        self.seed = seed
        self._with_render: ProfileFacts | None = None

    def __call__(self, condition: Any, context: Mapping[str, Any]) -> bool:
        """Decide one parsed condition for this recipient in this render."""
        if self._with_render is None:
            traits = {**self.facts.traits, **render_fields(context)}
            self._with_render = dataclasses.replace(self.facts, traits=traits)
        node = condition if not isinstance(condition, str) else parse_condition(condition)
        return evaluate(node, self._with_render, self.now, catalog=self.catalog, seed=self.seed)
