"""profiles.merged_into_id and campaign_conversions.profile_id get indexes

Two keys that point at a profile had no index leading with them, so every lookup by them walked a table:

- ``profiles.merged_into_id``: a merge re-points the profiles that had been merged into the profile it
  merges away (``UPDATE profiles SET merged_into_id = survivor WHERE workspace_id = ? AND merged_into_id =
  loser``), which walked all of the workspace's profiles. A million-customer import merges on most of its
  batches: this one statement was 9% of the importer's writer at a third of the way through its events, and
  it grows with the workspace. Deleting a profile (an erasure) also looked for the profiles pointing at it,
  for the key's ``ON DELETE SET NULL``. The index is partial: only merged-away profiles are in it.
- ``campaign_conversions.profile_id``: deleting a profile cascades to its conversions.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX ix_profiles_merged_into ON profiles (merged_into_id) WHERE merged_into_id IS NOT NULL"
    )
    op.create_index("ix_campaign_conversions_profile", "campaign_conversions", ["profile_id"])
    if op.get_bind().dialect.name == "sqlite":  # statistics for the new indexes only (as 0012)
        op.execute("ANALYZE ix_profiles_merged_into")
        op.execute("ANALYZE ix_campaign_conversions_profile")


def downgrade() -> None:
    op.drop_index("ix_campaign_conversions_profile", table_name="campaign_conversions")
    op.drop_index("ix_profiles_merged_into", table_name="profiles")
