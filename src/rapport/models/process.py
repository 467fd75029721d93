"""Processing: computed-trait definitions, score runs (fitted models), lifestyle reference tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rapport.db.base import Base, BigId, CreatedAtMixin, IdMixin, Json, UTCDateTime, WorkspaceScoped
from rapport.kit.clock import utcnow


class ComputedTrait(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A per-profile aggregate a workspace defines over its events (count, sum, last value, …).

    Values of unwindowed traits are kept in ``Profile.computed`` (updated incrementally by the processor);
    windowed ones are computed from the events when read, so they are exact at any moment.
    """

    __tablename__ = "computed_traits"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    event: Mapped[str] = mapped_column(String(200), nullable=False)
    aggregation: Mapped[str] = mapped_column(String(30), nullable=False)
    property: Mapped[str | None] = mapped_column(String(200), nullable=True)
    conditions: Mapped[list[Any]] = mapped_column(Json, nullable=False, default=list)
    window_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    builtin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ScoreRun(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """One fit of a score model for a workspace: parameters, quality metrics, the model itself."""

    __tablename__ = "score_runs"
    __table_args__ = (Index("ix_score_runs_workspace_kind", "workspace_id", "kind", "created_at"),)

    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="running")
    params: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
    usable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    model: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    profiles_scored: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LifestyleTable(IdMixin, CreatedAtMixin, WorkspaceScoped, Base):
    """A geodemographic reference table keyed by postcode, sector or area (the Mosaic/PRIZM idea)."""

    __tablename__ = "lifestyle_tables"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    name: Mapped[str] = mapped_column(String(100), nullable=False)
    columns: Mapped[list[str]] = mapped_column(Json, nullable=False, default=list)
    row_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class LifestyleRow(IdMixin, Base):
    """One key of a lifestyle table (a normalised postcode prefix, no spaces) and its columns."""

    __tablename__ = "lifestyle_rows"
    __table_args__ = (UniqueConstraint("table_id", "key"),)

    table_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("lifestyle_tables.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(20), nullable=False)
    values: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False, default=dict)
