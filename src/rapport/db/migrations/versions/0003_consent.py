"""consent

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

The consent log refuses UPDATE at the database level (R15); rows go only with an erased profile.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import rapport.db.base

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "topics",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("opt_in", sa.Boolean(), nullable=False),
        sa.Column("is_service", sa.Boolean(), nullable=False),
        sa.Column("archived_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_topics_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topics")),
        sa.UniqueConstraint("workspace_id", "key", name=op.f("uq_topics_workspace_id_key")),
    )
    with op.batch_alter_table("topics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_topics_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "consent_log",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("state_before", sa.String(length=20), nullable=True),
        sa.Column("state_after", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("wording", sa.Text(), nullable=True),
        sa.Column("wording_version", sa.String(length=40), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_consent_log_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_consent_log_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_log")),
    )
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.create_index("ix_consent_log_profile", ["profile_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_consent_log_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("paused_until", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_subscriptions_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_subscriptions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint(
            "workspace_id",
            "profile_id",
            "channel",
            "topic",
            name=op.f("uq_subscriptions_workspace_id_profile_id_channel_topic"),
        ),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_subscriptions_profile", ["profile_id"], unique=False)
        batch_op.create_index(
            "ix_subscriptions_workspace_channel_state",
            ["workspace_id", "channel", "topic", "state"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_subscriptions_workspace_id"), ["workspace_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION consent_log_no_update() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'consent_log is append-only'; END $$;"
        )
        op.execute(
            "CREATE TRIGGER consent_log_no_update BEFORE UPDATE ON consent_log "
            "FOR EACH ROW EXECUTE FUNCTION consent_log_no_update()"
        )
    else:
        op.execute(
            "CREATE TRIGGER consent_log_no_update BEFORE UPDATE ON consent_log "
            "BEGIN SELECT RAISE(ABORT, 'consent_log is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_log_no_update ON consent_log")
        op.execute("DROP FUNCTION IF EXISTS consent_log_no_update()")
    else:
        op.execute("DROP TRIGGER IF EXISTS consent_log_no_update")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_workspace_id"))
        batch_op.drop_index("ix_subscriptions_workspace_channel_state")
        batch_op.drop_index("ix_subscriptions_profile")

    op.drop_table("subscriptions")
    with op.batch_alter_table("consent_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_log_workspace_id"))
        batch_op.drop_index("ix_consent_log_profile")

    op.drop_table("consent_log")
    with op.batch_alter_table("topics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topics_workspace_id"))

    op.drop_table("topics")
