"""workspaces.definitions_rev also follows what a triggered campaign's entry reads

Migration 0014 bumps the counter when a campaign's kind, status or trigger changes: enough for the list of
active triggers. The event processor now also keeps, per triggered campaign, the campaign row and its entry
plan (arms and weights, control share, contents, delays, local time: ``campaigns.sending.prepare``), so
the counter must move when any of those changes:

* campaigns: any update (its rows change with a marketer's edit or a state transition, never per batch);
* campaign_variants, message_templates and snippets: any insert, update or delete (a snippet decides
  whether a template rendered at send time needs recommendations).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-24
"""

# ruff: noqa: S608  (DDL from the constant table names below)
from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = ("campaign_variants", "message_templates", "snippets")
#: 0014's update trigger on campaigns: only these columns
_CAMPAIGN_COLUMNS = '"kind", "status", "trigger"'


def _pg_trigger(table: str, update: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_definitions AFTER INSERT OR DELETE OR {update} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION rapport_definitions_changed()"
    )


def _sqlite_trigger(table: str, verb: str, event: str, row: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_definitions_{verb} AFTER {event} ON {table} BEGIN "
        f"UPDATE workspaces SET definitions_rev = definitions_rev + 1 WHERE id = {row}.workspace_id; END"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER campaigns_definitions ON campaigns")
        _pg_trigger("campaigns", "UPDATE")
        for table in _NEW:
            _pg_trigger(table, "UPDATE")
        return
    op.execute("DROP TRIGGER campaigns_definitions_update")
    _sqlite_trigger("campaigns", "update", "UPDATE", "NEW")
    for table in _NEW:
        for verb, row in (("insert", "NEW"), ("delete", "OLD"), ("update", "NEW")):
            _sqlite_trigger(table, verb, verb.upper(), row)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _NEW:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_definitions ON {table}")
        op.execute("DROP TRIGGER campaigns_definitions ON campaigns")
        _pg_trigger("campaigns", f"UPDATE OF {_CAMPAIGN_COLUMNS}")
        return
    for table in _NEW:
        for verb in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_definitions_{verb}")
    op.execute("DROP TRIGGER campaigns_definitions_update")
    _sqlite_trigger("campaigns", "update", f"UPDATE OF {_CAMPAIGN_COLUMNS}", "NEW")
