"""events: the category and profile indexes hold linked events only (``profile_id IS NOT NULL``)

``ix_events_segment_category`` (migration 0007) indexed every event with a string ``category``, the moment it
was ingested. An event is ingested without a profile (the processor links it later), so each such event was
indexed twice: at ingest under a NULL profile, and again when the processor set its profile (``profile_id`` is
the index's last column). On SQLite the index's two JSON calls were also the largest part of an ingest
INSERT: 21 of 40 ms per 1,600 rows, more than the table and its four other indexes together (B2).

Segments only ever ask for linked events (``Compiler.matching`` reads ``profile_id IS NOT NULL``), so the
index now holds those alone: ingest does not touch it, and the processor's UPDATE adds each entry once. Both
databases prove the new predicate from the same query term, and the planner tests
(tests/segments/test_indexes.py) check that the benchmark's category condition still reads it.

``ix_events_profile_time`` (profile, time) had the same double write, and every unlinked event sat in it under
one NULL key at a random time, so each ingest group touched pages all over it. It is read only for given
profiles (``profile_id = ?`` / ``IN``), which both databases take as ``profile_id IS NOT NULL``: it too holds
linked events only now (tests/test_planner.py checks that every profile-keyed statement still reads it). On
an events table of 300k rows the two changes took an ingest group of 1,600 rows from 41 to 29 ms of SQLite
time (and from 53 ms before the category index changed).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_events_segment_category"
_PROFILE_TIME = "ix_events_profile_time"


#: Per dialect: the category's value (the index key) and the test that it is a string (migration 0007's).
_CATEGORY = {
    "sqlite": (
        "json_extract(properties, '$.\"category\"')",
        "json_type(properties, '$.\"category\"') = 'text'",
    ),
    "postgresql": (
        "((properties -> 'category') #>> '{}') COLLATE \"C\"",
        "jsonb_typeof(properties -> 'category') = 'string'",
    ),
}


def _category_index(dialect: str, linked_only: bool) -> str:
    value, is_string = _CATEGORY[dialect]
    where = "profile_id IS NOT NULL AND " if linked_only else ""
    return (
        f"CREATE INDEX {_NAME} ON events (workspace_id, event, {value}, timestamp, profile_id) "
        f"WHERE {where}{is_string}"
    )


def _rebuild(linked_only: bool) -> None:
    dialect = op.get_bind().dialect.name
    sqlite = dialect == "sqlite"
    op.drop_index(_NAME, table_name="events")
    op.execute(_category_index(dialect, linked_only))
    op.drop_index(_PROFILE_TIME, table_name="events")
    op.execute(
        f"CREATE INDEX {_PROFILE_TIME} ON events (profile_id, timestamp)"
        + (" WHERE profile_id IS NOT NULL" if linked_only else "")
    )
    if sqlite:  # as 0007: statistics for the rebuilt indexes only (a dropped index loses its row)
        op.execute(f"ANALYZE {_NAME}")
        op.execute(f"ANALYZE {_PROFILE_TIME}")
    else:
        op.execute("ANALYZE events")


def upgrade() -> None:
    _rebuild(linked_only=True)


def downgrade() -> None:
    _rebuild(linked_only=False)
