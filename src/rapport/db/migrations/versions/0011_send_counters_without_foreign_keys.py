"""messaging: frequency-cap counters without foreign keys

``send_counters`` is the deliverer's hottest write: every batch locks its counters with one upsert and
writes the new counts with another (R9). PostgreSQL checked both foreign keys (profile, workspace) of every
counter row in both statements (the second updates rows the first wrote in the same transaction, and such
rows are checked again whatever changed): two thirds of each statement's time (B8, auto_explain: ~6.6 of
~8 ms per 250 rows). A counter is a number about a profile id, no personal data; the cascade the keys gave
is now explicit where it mattered: erasing a person deletes their counters (profiles/repository.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("send_counters", schema=None) as batch_op:
        batch_op.drop_constraint("fk_send_counters_profile_id_profiles", type_="foreignkey")
        batch_op.drop_constraint("fk_send_counters_workspace_id_workspaces", type_="foreignkey")


def downgrade() -> None:
    op.execute(  # counters of profiles erased meanwhile would break the restored keys
        "DELETE FROM send_counters WHERE profile_id NOT IN (SELECT id FROM profiles)"
        " OR workspace_id NOT IN (SELECT id FROM workspaces)"
    )
    with op.batch_alter_table("send_counters", schema=None) as batch_op:
        batch_op.create_foreign_key(
            "fk_send_counters_profile_id_profiles", "profiles", ["profile_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            "fk_send_counters_workspace_id_workspaces",
            "workspaces",
            ["workspace_id"],
            ["id"],
            ondelete="CASCADE",
        )
