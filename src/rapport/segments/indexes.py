"""The JSON values that segments find through expression indexes (migration 0007, the models' ``__table_args__``).

A condition on one of these reads an index instead of parsing every profile's JSON: the compiler writes the
comparison in the index's own shape (``rapport.segments.portable``) and, when counting a workspace, as one set of
ids per condition (``Compiler.indexed``), which the database builds from the index alone.

Per dialect, for a profile field ``doc.key`` of type string (``traits.city``):

- SQLite: ``(workspace_id, json_type(doc, '$."key"'), json_extract(doc, '$."key"'))``: the type and the value,
  so one index serves strings, numbers and the ``array`` arm of ``in``;
- PostgreSQL: ``(workspace_id, jsonb_typeof(doc -> 'key'), ((doc -> 'key') #>> '{}') COLLATE "C")``;
  for a number field the typed number instead,
  ``(workspace_id, (CASE WHEN jsonb_typeof(doc -> 'key') = 'number' THEN ((doc -> 'key') #>> '{}')::float8 END))``.

Event properties (``category``) are indexed for the linked events that carry them as a string (a partial index:
``profile_id IS NOT NULL``, which every event condition reads, so ingest never writes it), after
``(workspace_id, event)`` and before ``(timestamp, profile_id)``, like ``ix_events_workspace_name_time``.

Adding a field means a migration with its indexes, the same ``Index`` in the model, and an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

IndexedType = Literal["string", "number"]

#: ``(profiles column, key) -> type`` of the built-in fields with an index.
PROFILE_FIELDS: Mapping[tuple[str, str], IndexedType] = {
    ("traits", "city"): "string",
    ("computed", "total_spend"): "number",
    ("computed", "total_orders"): "number",
}

#: String properties of events with an index (``did "product_viewed" where category = "Footwear"``).
EVENT_PROPERTIES: frozenset[str] = frozenset({"category"})

#: Operators an index serves, per type (others read the JSON per row).
OPERATORS: Mapping[IndexedType, frozenset[str]] = {
    "string": frozenset({"=", "!=", "<", "<=", ">", ">=", "in"}),
    "number": frozenset({"=", "!=", "<", "<=", ">", ">=", "in"}),
}


def profile_field_type(column: str, keys: tuple[str, ...]) -> IndexedType | None:
    """Return the type of the indexed profile field at ``column`` / ``keys``, or None when it has no index."""
    if len(keys) != 1:
        return None
    return PROFILE_FIELDS.get((column, keys[0]))
