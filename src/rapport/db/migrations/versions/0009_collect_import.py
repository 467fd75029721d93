"""collect: event indexes for bulk import

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Redundant: uq_events_workspace_id_message_id leads with workspace_id (see models/event.py).
    op.drop_index("ix_events_workspace_id", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_workspace_id", "events", ["workspace_id"], unique=False)
