"""Column mappings of the import form, pure: guess a column's role, check a mapping, build what the importer reads.

A column is mapped to a *role* (``id:user_id``, ``id:email``, ``id:phone``, ``id:anonymous_id``,
``id:external`` with a system name, ``trait`` with a name, ``updated_at``, and for events ``event:name``,
``event:type``, ``event:timestamp``, ``event:message_id``, ``property`` / ``property_number`` with a name)
or ignored. Profiles go to the importer as the CSV with its own ``{column: field}`` mapping; events are
rewritten here into Segment-spec JSON lines, because the importer's mapping cannot give a fixed event
type or name, place traits by event type (``traits`` for identify, ``context.traits`` otherwise) or type a
property as a number.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from rapport.collect.importer import PARSE_ERROR_KEY

IGNORE = "ignore"
ID_KINDS = ("user_id", "email", "phone", "anonymous_id", "external")
#: Roles that take a name typed next to them (trait name, property name, external system).
NAMED = frozenset({"id:external", "trait", "property", "property_number"})
PROFILE_ROLES: tuple[tuple[str, str], ...] = (
    (IGNORE, "Ignore this column"),
    ("id:user_id", "Identifier: user id"),
    ("id:email", "Identifier: email"),
    ("id:phone", "Identifier: phone"),
    ("id:anonymous_id", "Identifier: anonymous id"),
    ("id:external", "Identifier: external id (name the system)"),
    ("trait", "Trait (name it)"),
    ("updated_at", "Time the traits were true"),
)
EVENT_ROLES: tuple[tuple[str, str], ...] = (
    (IGNORE, "Ignore this column"),
    ("id:user_id", "Identifier: user id"),
    ("id:anonymous_id", "Identifier: anonymous id"),
    ("id:email", "Identifier: email"),
    ("id:phone", "Identifier: phone"),
    ("event:name", "Event name"),
    ("event:type", "Event type (track, identify, page…)"),
    ("event:timestamp", "Event time"),
    ("event:message_id", "Message id (dedupes re-imports)"),
    ("property", "Property, text (name it)"),
    ("property_number", "Property, number (name it)"),
    ("trait", "Trait (name it)"),
)
EVENT_TYPES = ("track", "identify", "page", "screen")
#: Column names the profile importer reads as identifiers or times: a trait cannot take them.
RESERVED_TRAITS = frozenset(
    {"user_id", "userid", "userId", "anonymous_id", "anonymousId", "email", "phone", "device_token"}
    | {"updated_at", "updatedAt", "timestamp"}
)
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
_SYSTEM_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,49}$")
_NUMBER_RE = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$")

_GUESSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id:email", ("email", "e-mail", "email address", "mail")),
    ("id:phone", ("phone", "mobile", "phone number", "telephone", "tel", "msisdn")),
    ("id:user_id", ("user_id", "userid", "user id", "customer id", "customer_id", "id")),
    ("id:anonymous_id", ("anonymous_id", "anonymousid", "anonymous id")),
    ("updated_at", ("updated_at", "updatedat", "updated")),
)
_EVENT_GUESSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event:name", ("event", "event name", "event_name", "name")),
    ("event:type", ("type", "event type", "event_type")),
    ("event:timestamp", ("timestamp", "time", "date", "occurred_at", "created_at")),
    ("event:message_id", ("message_id", "messageid", "message id")),
)


class MappingError(ValueError):
    """A mapping the form cannot accept; ``column`` names the column at fault ('' for the whole form)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


@dataclass(frozen=True, slots=True)
class ColumnChoice:
    """What one CSV column becomes: a role and, for named roles, the name typed with it."""

    column: str
    role: str
    name: str = ""


def slug(text: str) -> str:
    """Return a trait or property name for a column header (``"Loyalty tier"`` → ``loyalty_tier``)."""
    out = re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
    if not out or out[0].isdigit():
        out = f"c_{out}"
    return out[:100]


def looks_numeric(values: Iterable[str]) -> bool:
    """Tell whether every non-blank sample is a plain decimal number (and there is at least one)."""
    seen = [v.strip() for v in values if v and v.strip()]
    return bool(seen) and all(_NUMBER_RE.match(v) for v in seen)


def guess(column: str, samples: Sequence[str], *, kind: str) -> ColumnChoice:
    """Guess a column's role from its header (and, for events, whether its samples are numbers)."""
    key = column.strip().lower()
    table = _GUESSES + (_EVENT_GUESSES if kind == "events" else ())
    for role, names in table:
        if key in names and role in dict(roles_for(kind)):
            return ColumnChoice(column, role)
    if key.startswith("external:") and kind == "profiles":
        return ColumnChoice(column, "id:external", key.split(":", 1)[1])
    if kind == "events":
        role = "property_number" if looks_numeric(samples) else "property"
        return ColumnChoice(column, role, slug(column))
    return ColumnChoice(column, "trait", slug(column))


def roles_for(kind: str) -> tuple[tuple[str, str], ...]:
    """Return the (value, label) roles a column may take in an import of ``kind``."""
    return PROFILE_ROLES if kind == "profiles" else EVENT_ROLES


def check(choices: Sequence[ColumnChoice], *, kind: str, event_type: str = "", event_name: str = "") -> None:
    """Refuse a mapping the importer would misread: unknown roles, bad or clashing names, no identifier."""
    allowed = dict(roles_for(kind))
    targets: dict[str, str] = {}
    for choice in choices:
        if choice.role not in allowed:
            raise MappingError(choice.column, "choose what this column is")
        if choice.role == IGNORE:
            continue
        name = choice.name.strip()
        if choice.role in NAMED and not name:
            raise MappingError(choice.column, "type a name for it")
        if choice.role == "id:external" and not _SYSTEM_RE.match(name):
            raise MappingError(
                choice.column, "the system name is lower-case letters, digits, '.', '-' or '_' (e.g. crm)"
            )
        if choice.role in {"trait", "property", "property_number"} and not _NAME_RE.match(name):
            raise MappingError(
                choice.column, "a name starts with a letter and has only letters, digits, '-' or '_'"
            )
        if choice.role == "trait" and kind == "profiles" and name in RESERVED_TRAITS:
            raise MappingError(choice.column, f"{name!r} is read as an identifier or time: choose it above")
        target = _target_key(choice)
        if target in targets:
            raise MappingError(choice.column, f"column {targets[target]!r} is already mapped to this")
        targets[target] = choice.column
    if not any(c.role.startswith("id:") for c in choices):
        raise MappingError("", "map at least one column to an identifier (user id, email, phone, …)")
    if kind == "events":
        if event_type and event_type not in EVENT_TYPES:
            raise MappingError("", f"the event type is one of {', '.join(EVENT_TYPES)}")
        has_type = any(c.role == "event:type" for c in choices)
        has_name = any(c.role == "event:name" for c in choices)
        if not has_type and event_type == "track" and not has_name and not event_name.strip():
            raise MappingError("", "track events need a name: map a column to it or type one")
        if len(event_name) > 200:
            raise MappingError("", "the event name is at most 200 characters")


def _target_key(choice: ColumnChoice) -> str:
    if choice.role == "id:external":
        return f"external:{choice.name.strip()}"
    if choice.role in NAMED:
        return f"{'property' if choice.role.startswith('property') else 'trait'}:{choice.name.strip()}"
    return choice.role


def profile_mapping(choices: Sequence[ColumnChoice]) -> dict[str, str]:
    """Return the importer's ``{column: field}`` mapping for a profile import (``-`` drops a column)."""
    out: dict[str, str] = {}
    for choice in choices:
        if choice.role == IGNORE:
            out[choice.column] = "-"
        elif choice.role == "id:external":
            out[choice.column] = f"external:{choice.name.strip()}"
        elif choice.role.startswith("id:"):
            out[choice.column] = choice.role[3:]
        elif choice.role == "trait":
            out[choice.column] = choice.name.strip()
        else:
            out[choice.column] = choice.role
    return out


def _number(text: str) -> Any:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return int(value) if _NUMBER_RE.match(text) and "." not in text else value


def event_message(
    row: Mapping[str, str], choices: Sequence[ColumnChoice], *, event_type: str, event_name: str
) -> dict[str, Any]:
    """Build one Segment-spec message from a CSV row; a bad number gives a row the importer refuses."""
    message: dict[str, Any] = {"type": event_type}
    if event_name.strip():
        message["event" if event_type == "track" else "name"] = event_name.strip()
    properties: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    for choice in choices:
        value = row.get(choice.column)
        if choice.role == IGNORE or value is None or not value.strip():
            continue
        value = value.strip()
        name = choice.name.strip()
        if choice.role == "id:user_id":
            message["userId"] = value
        elif choice.role == "id:anonymous_id":
            message["anonymousId"] = value
        elif choice.role in {"id:email", "id:phone"}:
            traits[choice.role[3:]] = value
        elif choice.role == "trait":
            traits[name] = value
        elif choice.role == "property":
            properties[name] = value
        elif choice.role == "property_number":
            try:
                properties[name] = _number(value)
            except ValueError:
                return {PARSE_ERROR_KEY: f"{choice.column}: {value!r} is not a number"}
        elif choice.role == "event:type":
            message["type"] = value.lower()
        elif choice.role == "event:name":
            message["event"] = value
        elif choice.role == "event:timestamp":
            message["timestamp"] = value
        elif choice.role == "event:message_id":
            message["messageId"] = value
    if message["type"] in {"page", "screen"} and "event" in message:
        message["name"] = message.pop("event")
    if properties:
        message["properties"] = properties
    if traits:
        if message["type"] == "identify":
            message["traits"] = traits
        else:
            message["context"] = {"traits": traits}
    return message


def csv_to_event_lines(
    handle: IO[str], choices: Sequence[ColumnChoice], *, event_type: str, event_name: str
) -> Iterator[str]:
    """Yield one JSON line per CSV data row (streamed: constant memory)."""
    reader = csv.DictReader(handle)
    for raw in reader:
        if None in raw:
            row: dict[str, Any] = {PARSE_ERROR_KEY: "the row has more cells than the header"}
        else:
            cells = {k: v for k, v in raw.items() if k is not None}
            row = event_message(cells, choices, event_type=event_type, event_name=event_name)
        yield json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
