"""process: scores in a narrow table of their own (``profile_scores``), moved out of ``profiles.computed``

The nightly score run rewrites every profile's scores. In ``profiles.computed`` that meant a new version of
the whole wide profile row and, on PostgreSQL, of every index on it (``computed`` is indexed by expression, so
no update is HOT): about two minutes for a million profiles. Here each profile's scores are one small JSON
object in a row keyed by the profile. Upgrading moves the score keys (``rfm_*``, ``loyalty_*``, the CLV keys
and every ``propensity_*``) out of ``computed``; downgrading merges them back.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

# ruff: noqa: S608  (SQL built from this module's constant key names)
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The score keys of ``rapport.process.scores_service`` (RFM_KEYS + CLV_KEYS) as they were in ``computed``.
_KEYS = (
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_segment",
    "loyalty_score",
    "loyalty_level",
    "clv_12m",
    "p_alive",
    "churn_danger",
    "churn_band",
    "value_tier",
    "expected_purchases_90d",
)
_PREFIX = "propensity_"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# json_each gives a JSON value back as SQL (true as 1, a string unquoted): this turns it into JSON again.
_SQLITE_VALUE = (
    "CASE e.type WHEN 'object' THEN json(e.value) WHEN 'array' THEN json(e.value) "
    "WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') WHEN 'null' THEN json('null') "
    "ELSE json_quote(e.value) END"
)


def _is_score(key: str) -> str:
    names = ", ".join(f"'{k}'" for k in _KEYS)
    return f"({key} IN ({names}) OR substr({key}, 1, {len(_PREFIX)}) = '{_PREFIX}')"


def upgrade() -> None:
    op.create_table(
        "profile_scores",
        sa.Column("profile_id", _ID, autoincrement=False, nullable=False),
        sa.Column(
            "scores",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("workspace_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_profile_scores_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_profile_scores_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_profile_scores")),
    )
    with op.batch_alter_table("profile_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_scores_workspace_id"), ["workspace_id"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "INSERT INTO profile_scores (profile_id, workspace_id, scores) "
            "SELECT p.id, p.workspace_id, s.scores FROM profiles AS p, LATERAL ("
            f"  SELECT jsonb_object_agg(e.key, e.value) AS scores FROM jsonb_each(p.computed) AS e "
            f"  WHERE {_is_score('e.key')}) AS s "
            "WHERE s.scores IS NOT NULL"
        )
        op.execute(
            "UPDATE profiles AS p SET computed = p.computed - ARRAY(SELECT jsonb_object_keys(s.scores)) "
            "FROM profile_scores AS s WHERE s.profile_id = p.id"
        )
    else:
        op.execute(
            "INSERT INTO profile_scores (profile_id, workspace_id, scores) "
            "SELECT p.id, p.workspace_id, ("
            f"  SELECT json_group_object(e.key, {_SQLITE_VALUE}) "
            f"  FROM json_each(p.computed) AS e WHERE {_is_score('e.key')}) AS scores "
            "FROM profiles AS p WHERE EXISTS ("
            f"  SELECT 1 FROM json_each(p.computed) AS e WHERE {_is_score('e.key')})"
        )
        op.execute(
            "UPDATE profiles SET computed = ("
            f"  SELECT json_group_object(e.key, {_SQLITE_VALUE}) "
            f"  FROM json_each(profiles.computed) AS e WHERE NOT {_is_score('e.key')}) "
            "WHERE id IN (SELECT profile_id FROM profile_scores)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE profiles AS p SET computed = p.computed || s.scores "
            "FROM profile_scores AS s WHERE s.profile_id = p.id"
        )
    else:
        op.execute(
            "UPDATE profiles SET computed = json_patch(computed, "
            "  (SELECT s.scores FROM profile_scores AS s WHERE s.profile_id = profiles.id)) "
            "WHERE id IN (SELECT profile_id FROM profile_scores)"
        )
    with op.batch_alter_table("profile_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_scores_workspace_id"))
    op.drop_table("profile_scores")
