"""collect: profiles, identities, trait history, merges, suppressions, events, quarantine

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import rapport.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=True),
        sa.Column("user_id", sa.String(length=400), nullable=True),
        sa.Column("anonymous_id", sa.String(length=400), nullable=True),
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("timestamp", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "properties",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "extra",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("state", sa.SmallInteger(), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("workspace_id", "message_id", name=op.f("uq_events_workspace_id_message_id")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_pending",
            ["workspace_id", "id"],
            unique=False,
            sqlite_where=sa.text("state = 0"),
            postgresql_where=sa.text("state = 0"),
        )
        batch_op.create_index("ix_events_profile_time", ["profile_id", "timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index(
            "ix_events_workspace_name_time",
            ["workspace_id", "event", "timestamp", "profile_id"],
            unique=False,
        )

    op.create_table(
        "profile_merges",
        sa.Column("survivor_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("merged_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
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
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_profile_merges_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_merges")),
    )
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.create_index("ix_profile_merges_merged", ["merged_id"], unique=False)
        batch_op.create_index("ix_profile_merges_survivor", ["survivor_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_profile_merges_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "profiles",
        sa.Column(
            "traits",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "trait_times",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("timezone_source", sa.String(length=20), nullable=True),
        sa.Column("first_seen_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("merged_into_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["profiles.id"],
            name=op.f("fk_profiles_merged_into_id_profiles"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_profiles_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profiles")),
    )
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.create_index("ix_profiles_workspace_email", ["workspace_id", "email"], unique=False)
        batch_op.create_index(batch_op.f("ix_profiles_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_profiles_workspace_name", ["workspace_id", "name"], unique=False)
        batch_op.create_index("ix_profiles_workspace_phone", ["workspace_id", "phone"], unique=False)

    op.create_table(
        "quarantined_events",
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("received_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", rapport.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("replay_result", sa.String(length=500), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_quarantined_events_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_events")),
    )
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_events_workspace_id"), ["workspace_id"], unique=False
        )
        batch_op.create_index(
            "ix_quarantined_events_workspace_open", ["workspace_id", "replayed_at"], unique=False
        )

    op.create_table(
        "suppressions",
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_suppressions_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
        sa.UniqueConstraint(
            "workspace_id", "kind", "value_hash", name=op.f("uq_suppressions_workspace_id_kind_value_hash")
        ),
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_suppressions_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "identities",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=400), nullable=False),
        sa.Column("source_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("created_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_identities_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_identities_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint(
            "workspace_id", "kind", "value", name=op.f("uq_identities_workspace_id_kind_value")
        ),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index("ix_identities_profile", ["profile_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_identities_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "trait_history",
        sa.Column("profile_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "previous",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("set_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("source_event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("recorded_at", rapport.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_trait_history_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_trait_history_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trait_history")),
    )
    with op.batch_alter_table("trait_history", schema=None) as batch_op:
        batch_op.create_index("ix_trait_history_profile_name", ["profile_id", "name", "set_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_trait_history_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trait_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trait_history_workspace_id"))
        batch_op.drop_index("ix_trait_history_profile_name")

    op.drop_table("trait_history")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_workspace_id"))
        batch_op.drop_index("ix_identities_profile")

    op.drop_table("identities")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppressions_workspace_id"))

    op.drop_table("suppressions")
    with op.batch_alter_table("quarantined_events", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantined_events_workspace_open")
        batch_op.drop_index(batch_op.f("ix_quarantined_events_workspace_id"))

    op.drop_table("quarantined_events")
    with op.batch_alter_table("profiles", schema=None) as batch_op:
        batch_op.drop_index("ix_profiles_workspace_phone")
        batch_op.drop_index("ix_profiles_workspace_name")
        batch_op.drop_index(batch_op.f("ix_profiles_workspace_id"))
        batch_op.drop_index("ix_profiles_workspace_email")

    op.drop_table("profiles")
    with op.batch_alter_table("profile_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_merges_workspace_id"))
        batch_op.drop_index("ix_profile_merges_survivor")
        batch_op.drop_index("ix_profile_merges_merged")

    op.drop_table("profile_merges")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_workspace_name_time")
        batch_op.drop_index(batch_op.f("ix_events_workspace_id"))
        batch_op.drop_index("ix_events_profile_time")
        batch_op.drop_index(
            "ix_events_pending", sqlite_where=sa.text("state = 0"), postgresql_where=sa.text("state = 0")
        )

    op.drop_table("events")
