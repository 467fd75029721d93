"""events: no foreign key to workspaces

The event log is the hottest insert path. PostgreSQL checked ``events.workspace_id`` against ``workspaces``
for every inserted row: a trigger running a ``SELECT … FOR KEY SHARE`` on the workspace's row, and with
several API processes writing at once, their transactions' shared locks on that one row became multixacts.
On ``rapport serve --processes 2`` (B2, /v1/batch of 100 events, PostgreSQL on the same two cores) the
key's checks were a fifth of the server's CPU: 47-49k events/s with it, 53-58k without (three runs each,
interleaved). A single connection's insert of 100 events took 1.65 ms of server time with it, 1.37 without.

The key protected nothing an edge does not: every event's workspace comes from the authenticated key that
sent it (or the import's workspace), and workspaces are never deleted by Rapport. Like migration 0011's
counters, events are erased explicitly where it matters (a person's erasure deletes their events).

SQLite has no ``DROP CONSTRAINT``: the table is rebuilt the documented way, from its own stored ``CREATE``
text without the key, and every index is recreated from its stored text (the expression index of
migration 0012 included, which reflection could not rebuild).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-24
"""

import re
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "fk_events_workspace_id_workspaces"
_CLAUSE = f"CONSTRAINT {_KEY} FOREIGN KEY(workspace_id) REFERENCES workspaces (id) ON DELETE CASCADE"


def _rebuild_sqlite(change: str) -> None:
    """Rebuild ``events`` with its stored CREATE text changed by ``change`` ("drop" or "add" the key)."""
    conn = op.get_bind()
    table_sql = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'")
    ).scalar_one()
    indexes = (
        conn.execute(
            text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"
            )
        )
        .scalars()
        .all()
    )
    if change == "drop":
        new_sql = table_sql.replace(f", \n\t{_CLAUSE}", "")
    else:
        marker = "CONSTRAINT pk_events PRIMARY KEY (id)"
        new_sql = table_sql.replace(marker, f"{marker}, \n\t{_CLAUSE}")
    if new_sql == table_sql:
        raise RuntimeError(f"events: cannot {change} {_KEY} in its stored definition")
    # SQLite stores a renamed table's text with its new name quoted: "events" after a first rebuild
    op.execute(re.sub(r'^CREATE TABLE ("?)events\1', "CREATE TABLE _events_rebuilt", new_sql, count=1))
    op.execute("INSERT INTO _events_rebuilt SELECT * FROM events")
    op.execute("DROP TABLE events")
    op.execute("ALTER TABLE _events_rebuilt RENAME TO events")
    for index_sql in indexes:
        op.execute(index_sql)
    op.execute("ANALYZE events")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("drop")
    else:
        op.drop_constraint(_KEY, "events", type_="foreignkey")


def downgrade() -> None:
    op.execute("DELETE FROM events WHERE workspace_id NOT IN (SELECT id FROM workspaces)")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite("add")
    else:
        op.create_foreign_key(_KEY, "events", "workspaces", ["workspace_id"], ["id"], ondelete="CASCADE")
