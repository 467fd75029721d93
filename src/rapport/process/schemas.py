"""Pydantic shapes of the process API: computed-trait definitions, score runs, lifestyle tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ConditionIn(BaseModel):
    """One filter of a computed trait: ``{property, op, value}``."""

    property: str = Field(max_length=200)
    op: Literal["=", "!=", ">", ">=", "<", "<=", "in", "contains"] = "="
    value: Any


class ComputedTraitCreate(BaseModel):
    """A new computed trait."""

    name: str = Field(min_length=1, max_length=100)
    event: str = Field(min_length=1, max_length=200)
    aggregation: str
    property: str | None = Field(default=None, max_length=200)
    conditions: list[ConditionIn] = Field(default_factory=list)
    window_days: int | None = None
    description: str = ""


class ComputedTraitUpdate(BaseModel):
    """Changes to a computed trait (omitted fields stay)."""

    event: str | None = Field(default=None, max_length=200)
    aggregation: str | None = None
    property: str | None = Field(default=None, max_length=200)
    conditions: list[ConditionIn] | None = None
    window_days: int | None = None
    description: str | None = None


class ComputedTraitRead(BaseModel):
    """A computed-trait definition."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    event: str
    aggregation: str
    property: str | None
    conditions: list[dict[str, Any]]
    window_days: int | None
    builtin: bool
    version: int
    created_at: datetime
    updated_at: datetime
    archived_at: datetime | None


ScoreKind = Literal["rfm", "clv", "propensity"]
ALL_KINDS: tuple[ScoreKind, ...] = ("rfm", "clv", "propensity")


class ScoreRunRequest(BaseModel):
    """Which score kinds to run now."""

    kinds: list[ScoreKind] = Field(default_factory=lambda: list(ALL_KINDS))


class ScoreRunRead(BaseModel):
    """One recorded score run (the model bytes are not shown)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    name: str
    status: str
    usable: bool
    params: dict[str, Any]
    metrics: dict[str, Any]
    error: str | None
    profiles_scored: int
    created_at: datetime
    finished_at: datetime | None


class LifestyleTableRead(BaseModel):
    """An uploaded lifestyle reference table."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    columns: list[str]
    row_count: int
    active: bool
    created_at: datetime
    updated_at: datetime
