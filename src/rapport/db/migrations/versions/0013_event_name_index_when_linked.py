"""events: the (workspace, event, time, profile) index holds linked events only (``profile_id IS NOT NULL``)

Migration 0012 did this for the category and profile indexes; ``ix_events_workspace_name_time`` had the same
double write. An event is ingested without a profile and the processor links it later, so each event was
indexed at ingest under a NULL profile and then moved when the processor set its profile (``profile_id`` is
the index's last column). Its readers count and list events of a workspace by name and time, and every one
of them asks for linked events (``profile_id IS NOT NULL``, which both databases prove from the index's
predicate; tests/test_planner.py checks that each still reads it). An event the processor has not reached
yet (a few milliseconds old) is not in it: ingest does not touch it, the processor adds each entry once.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_events_workspace_name_time"


def _rebuild(linked_only: bool) -> None:
    op.drop_index(_NAME, table_name="events")
    op.execute(
        f"CREATE INDEX {_NAME} ON events (workspace_id, event, timestamp, profile_id)"
        + (" WHERE profile_id IS NOT NULL" if linked_only else "")
    )
    if op.get_bind().dialect.name == "sqlite":  # statistics for the rebuilt index only (as 0012)
        op.execute(f"ANALYZE {_NAME}")
    else:
        op.execute("ANALYZE events")


def upgrade() -> None:
    _rebuild(linked_only=True)


def downgrade() -> None:
    _rebuild(linked_only=False)
