"""workspaces.definitions_rev: a counter the database bumps whenever a workspace's definitions change

The event processor reads, on every batch, things a marketer changes a few times a day at most: the
workspace's settings, its computed-trait definitions, its segments, the triggers of its active campaigns,
its topics. Each read is a statement and ORM work, a fifth of a small batch's time. With this counter a
process keeps what it built from them (``rapport.accounts.definitions``) and reads one small row per batch
instead: the cache is valid while the counter is unchanged.

Triggers keep the counter, so no service path can forget it:

* segments: insert, delete, update of a column the evaluation reads (name, ast, text, version, status,
  seed, by_time, archived_at; not the counters the processor itself writes on every batch);
* campaigns: insert, delete, update of kind, status or trigger;
* computed_traits and topics: any insert, update or delete;
* workspaces: an update of settings, default_region or timezone bumps the row's own counter.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-24
"""

# ruff: noqa: S608  (DDL from the constant table and column names above)
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table -> the columns whose update changes a definition (None: any column)
_WATCHED: dict[str, tuple[str, ...] | None] = {
    "segments": ("name", "ast", "text", "version", "status", "seed", "by_time", "archived_at"),
    "campaigns": ("kind", "status", "trigger"),
    "computed_traits": None,
    "topics": None,
}
_OWN = ("settings", "default_region", "timezone")


def _columns(names: tuple[str, ...]) -> str:
    return ", ".join(f'"{name}"' for name in names)


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.add_column(sa.Column("definitions_rev", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION rapport_definitions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'DELETE' THEN
                UPDATE workspaces SET definitions_rev = definitions_rev + 1 WHERE id = OLD.workspace_id;
              ELSE
                UPDATE workspaces SET definitions_rev = definitions_rev + 1 WHERE id = NEW.workspace_id;
              END IF;
              RETURN NULL;
            END $$
            """
        )
        op.execute(
            """
            CREATE FUNCTION rapport_workspace_definitions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              NEW.definitions_rev := OLD.definitions_rev + 1;
              RETURN NEW;
            END $$
            """
        )
        for table, columns in _WATCHED.items():
            update = "UPDATE" if columns is None else f"UPDATE OF {_columns(columns)}"
            op.execute(
                f"CREATE TRIGGER {table}_definitions AFTER INSERT OR DELETE OR {update} ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION rapport_definitions_changed()"
            )
        op.execute(
            f"CREATE TRIGGER workspaces_definitions BEFORE UPDATE OF {_columns(_OWN)} ON workspaces "
            "FOR EACH ROW EXECUTE FUNCTION rapport_workspace_definitions_changed()"
        )
        return
    for table, columns in _WATCHED.items():
        for verb, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "NEW")):
            event = verb if verb != "UPDATE" or columns is None else f"UPDATE OF {_columns(columns)}"
            op.execute(
                f"CREATE TRIGGER {table}_definitions_{verb.lower()} AFTER {event} ON {table} BEGIN "
                f"UPDATE workspaces SET definitions_rev = definitions_rev + 1 WHERE id = {row}.workspace_id; END"
            )
    # SQLite runs no trigger from a trigger's own statement unless recursive_triggers is on (it is not),
    # and this one's UPDATE sets a column outside the watched list anyway
    op.execute(
        f"CREATE TRIGGER workspaces_definitions AFTER UPDATE OF {_columns(_OWN)} ON workspaces BEGIN "
        "UPDATE workspaces SET definitions_rev = definitions_rev + 1 WHERE id = NEW.id; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_definitions ON {table}")
        op.execute("DROP TRIGGER IF EXISTS workspaces_definitions ON workspaces")
        op.execute("DROP FUNCTION IF EXISTS rapport_definitions_changed()")
        op.execute("DROP FUNCTION IF EXISTS rapport_workspace_definitions_changed()")
    else:
        for table in _WATCHED:
            for verb in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_definitions_{verb}")
        op.execute("DROP TRIGGER IF EXISTS workspaces_definitions")
    with op.batch_alter_table("workspaces") as batch_op:
        batch_op.drop_column("definitions_rev")
