"""messaging: the due-messages index in the claim's order (status, priority, run_at, id)

The Deliverer claims ``status = 'queued' AND run_at <= now ORDER BY priority, run_at, id LIMIT n``. The
index was (status, run_at, priority): it found the due rows but every claim sorted all of them, which grows
with the queue (about 5 ms a claim at 10k queued on PostgreSQL, one claim per 250 messages). In the claim's
order the database walks the index and stops after n rows; rows not yet due are skipped inside the index.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_due")
        batch_op.create_index("ix_messages_due", ["status", "priority", "run_at", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_due")
        batch_op.create_index("ix_messages_due", ["status", "run_at", "priority"], unique=False)
