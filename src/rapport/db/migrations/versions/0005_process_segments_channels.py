"""process segments channels

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import rapport.db.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_receipts",
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("receipt_id", sa.String(length=200), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_receipts")),
        sa.UniqueConstraint("provider", "receipt_id", name=op.f("uq_webhook_receipts_provider_receipt_id")),
    )
    op.create_table(
        "computed_traits",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("aggregation", sa.String(length=30), nullable=False),
        sa.Column("property", sa.String(length=200), nullable=True),
        sa.Column(
            "conditions",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("window_days", sa.Integer(), nullable=True),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("archived_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_computed_traits_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_computed_traits")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_computed_traits_workspace_id_name")),
    )
    with op.batch_alter_table("computed_traits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_computed_traits_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "lifestyle_tables",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "columns",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_lifestyle_tables_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifestyle_tables")),
        sa.UniqueConstraint("workspace_id", "name", name=op.f("uq_lifestyle_tables_workspace_id_name")),
    )
    with op.batch_alter_table("lifestyle_tables", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lifestyle_tables_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "score_runs",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "params",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("usable", sa.Boolean(), nullable=False),
        sa.Column("model", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("profiles_scored", sa.Integer(), nullable=False),
        sa.Column("finished_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_score_runs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_runs")),
    )
    with op.batch_alter_table("score_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_score_runs_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(
            "ix_score_runs_workspace_kind", ["workspace_id", "kind", "created_at"], unique=False
        )

    op.create_table(
        "segments",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "ast",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("seed", sa.String(length=40), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("by_time", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("updated_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("refreshed_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("archived_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segments_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_segments_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_segments_workspace_name", ["workspace_id", "name"], unique=False)

    op.create_table(
        "lifestyle_rows",
        sa.Column("table_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=20), nullable=False),
        sa.Column(
            "values",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["table_id"],
            ["lifestyle_tables.id"],
            name=op.f("fk_lifestyle_rows_table_id_lifestyle_tables"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lifestyle_rows")),
        sa.UniqueConstraint("table_id", "key", name=op.f("uq_lifestyle_rows_table_id_key")),
    )
    op.create_table(
        "push_subscriptions",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint", sa.String(length=1000), nullable=False),
        sa.Column("p256dh", sa.String(length=200), nullable=False),
        sa.Column("auth", sa.String(length=100), nullable=False),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("last_success_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_push_subscriptions_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_push_subscriptions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_subscriptions")),
        sa.UniqueConstraint(
            "workspace_id", "endpoint", name=op.f("uq_push_subscriptions_workspace_id_endpoint")
        ),
    )
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_push_subscriptions_profile", ["profile_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_push_subscriptions_workspace_id"), ["workspace_id"], unique=False
        )

    op.create_table(
        "segment_members",
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("segment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entered_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_segment_members_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_segment_members_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_segment_members_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("segment_id", "profile_id", name=op.f("pk_segment_members")),
    )
    with op.batch_alter_table("segment_members", schema=None) as batch_op:
        batch_op.create_index("ix_segment_members_profile", ["workspace_id", "profile_id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("read_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("dismissed_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "computed",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'{}'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_column("computed")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("dismissed_at")
        batch_op.drop_column("read_at")

    with op.batch_alter_table("segment_members", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_members_profile")

    op.drop_table("segment_members")
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscriptions_workspace_id"))
        batch_op.drop_index("ix_push_subscriptions_profile")

    op.drop_table("push_subscriptions")
    op.drop_table("lifestyle_rows")
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index("ix_segments_workspace_name")
        batch_op.drop_index(batch_op.f("ix_segments_workspace_id"))

    op.drop_table("segments")
    with op.batch_alter_table("score_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_score_runs_workspace_kind")
        batch_op.drop_index(batch_op.f("ix_score_runs_workspace_id"))

    op.drop_table("score_runs")
    with op.batch_alter_table("lifestyle_tables", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lifestyle_tables_workspace_id"))

    op.drop_table("lifestyle_tables")
    with op.batch_alter_table("computed_traits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_computed_traits_workspace_id"))

    op.drop_table("computed_traits")
    op.drop_table("webhook_receipts")
