"""segments: expression indexes on the JSON values segments filter on (built-in fields, event category), live ids

Each index holds a field's JSON type and value in the shape the segment compiler writes its comparisons in
(``rapport.segments.indexes``), so that ``total_spend > 500`` or ``city in ("Leeds", "York")`` reads an index
instead of every profile's JSON. The expressions differ per dialect; the PostgreSQL ones are the models' (see
``models/profile.py`` and ``models/event.py``). Planner statistics are refreshed for the two tables at the end:
PostgreSQL and SQLite only learn an expression's distribution from ANALYZE.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index name, profiles column, key, type)
_PROFILE_FIELDS = (
    ("ix_profiles_segment_city", "traits", "city", "string"),
    ("ix_profiles_segment_total_spend", "computed", "total_spend", "number"),
    ("ix_profiles_segment_total_orders", "computed", "total_orders", "number"),
)
_EVENT_CATEGORY = "ix_events_segment_category"
_LIVE = "ix_profiles_live"


def _sqlite_profile(name: str, column: str, key: str) -> str:
    path = f"'$.\"{key}\"'"
    return (
        f"CREATE INDEX {name} ON profiles "
        f"(workspace_id, json_type({column}, {path}), json_extract({column}, {path}))"
    )


def _pg_profile(name: str, column: str, key: str, kind: str) -> str:
    value = f"({column} -> '{key}')"
    if kind == "number":
        typed = (
            f"(CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value} #>> '{{}}')::double precision END)"
        )
        return f"CREATE INDEX {name} ON profiles (workspace_id, {typed})"
    return (
        f"CREATE INDEX {name} ON profiles "
        f"(workspace_id, jsonb_typeof({value}), ({value} #>> '{{}}') COLLATE \"C\")"
    )


_SQLITE_CATEGORY = (
    f"CREATE INDEX {_EVENT_CATEGORY} ON events (workspace_id, event, "
    "json_extract(properties, '$.\"category\"'), timestamp, profile_id) "
    "WHERE json_type(properties, '$.\"category\"') = 'text'"
)
_PG_CATEGORY = (
    f"CREATE INDEX {_EVENT_CATEGORY} ON events (workspace_id, event, "
    "((properties -> 'category') #>> '{}') COLLATE \"C\", timestamp, profile_id) "
    "WHERE jsonb_typeof(properties -> 'category') = 'string'"
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # live profiles by workspace: the id sets of a count are checked here instead of in the wide rows
    op.create_index(
        _LIVE,
        "profiles",
        ["workspace_id", "id"],
        sqlite_where=sa.text("merged_into_id IS NULL"),
        postgresql_where=sa.text("merged_into_id IS NULL"),
    )
    for name, column, key, kind in _PROFILE_FIELDS:
        op.execute(_sqlite_profile(name, column, key) if sqlite else _pg_profile(name, column, key, kind))
    op.execute(_SQLITE_CATEGORY if sqlite else _PG_CATEGORY)
    if sqlite:
        for name in (_LIVE, *(name for name, *_ in _PROFILE_FIELDS)):
            op.execute(f"ANALYZE {name}")
        op.execute(f"ANALYZE {_EVENT_CATEGORY}")
    else:
        op.execute("ANALYZE profiles")
        op.execute("ANALYZE events")


def downgrade() -> None:
    op.drop_index(_EVENT_CATEGORY, table_name="events")
    for name, *_ in reversed(_PROFILE_FIELDS):
        op.drop_index(name, table_name="profiles")
    op.drop_index(_LIVE, table_name="profiles")
