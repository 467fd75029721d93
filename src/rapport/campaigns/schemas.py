"""Pydantic shapes of the campaigns API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rapport.kit.bounds import Id, Moment

Kind = Literal["broadcast", "triggered", "date_relative"]
Channel = Literal["email", "sms", "push", "inapp", "webhook"]

# The bounds of every number a campaign takes (docs/campaigns.md, "Limits"). The UI's form shows them as
# min/max on its inputs and checks them in its own unit (web/campaigns_form.py); past them a value is a typo
# or an attack, and a number too big for the database would otherwise end as a 500.
#: The largest id a table holds (a signed 64-bit integer): a bigger number names nothing.
MAX_PRIORITY = 1000
MAX_WEIGHT = 1000
MAX_CONTROL_PERCENT = 90
MAX_TEST_PERCENT = 100
MAX_TEST_HOURS = 24 * 30
MAX_AGE_HOURS = 24 * 366
MAX_OFFSET_DAYS = 3650
MAX_REENTRY_DAYS = 3650
MAX_DELAY_SECONDS = 365 * 86400
MAX_THROTTLE_PER_HOUR = 10_000_000
MAX_GOAL_DAYS = 365
#: In any currency: even a per-message cost in rupiah or won stays far below a million.
MAX_COST_PER_MESSAGE = 1_000_000


class VariantIn(BaseModel):
    """One arm: a saved template (``template_id``) or inline ``content`` in the channel's Liquid parts."""

    key: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(default="", max_length=200)
    template_id: Id | None = None
    content: dict[str, Any] = Field(default_factory=dict)
    weight: int = Field(default=1, ge=0, le=MAX_WEIGHT)


class ExperimentIn(BaseModel):
    """An A/B/n test phase: ``test_percent`` of the non-control audience is split over the variants; after
    ``test_hours`` the winner by ``metric`` (chosen by ``method``) goes to the rest when ``send_winner``."""

    test_percent: float = Field(default=0, ge=0, le=MAX_TEST_PERCENT)
    metric: Literal["conversion", "click", "open"] = "conversion"
    method: Literal["significance", "thompson"] = "significance"
    test_hours: float = Field(default=24, gt=0, le=MAX_TEST_HOURS)
    send_winner: bool = True


#: An event trigger ignores events older than this when they are processed: a historical import or a device
#: that was offline for days must not send "thanks for your order" about last year's orders.
DEFAULT_MAX_AGE_HOURS = 24.0


class TriggerIn(BaseModel):
    """What starts a triggered or date-relative campaign for one profile.

    - ``event``: ``event`` (name) and optional ``where`` (segment-language property conditions, e.g.
      ``total > 100 and store = "Leeds"``); an event older than ``max_age_hours`` when it is processed
      (late data, a historical import) does not fire (default 24 h);
    - ``segment_entry`` / ``segment_exit``: ``segment_id``;
    - ``date``: ``trait`` (a date trait) ± ``offset_days`` (−30: thirty days before), at ``at`` local time;
      ``anniversary`` for yearly dates such as birthdays.
    """

    type: Literal["event", "segment_entry", "segment_exit", "date"]
    event: str | None = Field(default=None, max_length=200)
    where: str | None = Field(default=None, max_length=5000)
    max_age_hours: float = Field(default=DEFAULT_MAX_AGE_HOURS, gt=0, le=MAX_AGE_HOURS)
    segment_id: Id | None = None
    trait: str | None = Field(default=None, max_length=200)
    offset_days: int = Field(default=0, ge=-MAX_OFFSET_DAYS, le=MAX_OFFSET_DAYS)
    at: str | None = Field(default=None, pattern=r"^\d{1,2}:\d{2}$")
    anniversary: bool = False


class CampaignCreate(BaseModel):
    """A new campaign (a draft until launched)."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    kind: Kind = "broadcast"
    channel: Channel
    topic: str = Field(default="", max_length=64)
    message_kind: Literal["marketing", "service"] = "marketing"
    priority: int = Field(default=100, ge=0, le=MAX_PRIORITY)
    segment_ids: list[Id] = Field(default_factory=list)
    exclude_segment_ids: list[Id] = Field(default_factory=list)
    variants: list[VariantIn] = Field(min_length=1, max_length=26)
    control_percent: float = Field(default=0, ge=0, le=MAX_CONTROL_PERCENT)
    experiment: ExperimentIn | None = None
    send_at: Moment | None = None
    local_time: str | None = Field(default=None, pattern=r"^\d{1,2}:\d{2}$")
    throttle_per_hour: int | None = Field(default=None, ge=1, le=MAX_THROTTLE_PER_HOUR)
    trigger: TriggerIn | None = None
    reentry: Literal["once", "always", "every"] = "once"
    reentry_days: int | None = Field(default=None, ge=1, le=MAX_REENTRY_DAYS)
    delay_seconds: int = Field(default=0, ge=0, le=MAX_DELAY_SECONDS)
    goal_event: str = Field(default="order_completed", min_length=1, max_length=200)
    goal_days: int = Field(default=7, ge=1, le=MAX_GOAL_DAYS)
    goal_revenue_property: str = Field(default="total", max_length=100)
    cost_per_message: float | None = Field(default=None, ge=0, le=MAX_COST_PER_MESSAGE)
    seed_addresses: list[str] = Field(default_factory=list, max_length=50)


class CampaignUpdate(BaseModel):
    """Changes to a draft or scheduled campaign (a running one can only be paused, resumed or cancelled)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = None
    topic: str | None = Field(default=None, max_length=64)
    priority: int | None = Field(default=None, ge=0, le=MAX_PRIORITY)
    segment_ids: list[Id] | None = None
    exclude_segment_ids: list[Id] | None = None
    variants: list[VariantIn] | None = Field(default=None, min_length=1, max_length=26)
    control_percent: float | None = Field(default=None, ge=0, le=MAX_CONTROL_PERCENT)
    experiment: ExperimentIn | None = None
    send_at: Moment | None = None
    local_time: str | None = Field(default=None, pattern=r"^\d{1,2}:\d{2}$")
    throttle_per_hour: int | None = Field(default=None, ge=1, le=MAX_THROTTLE_PER_HOUR)
    trigger: TriggerIn | None = None
    reentry: Literal["once", "always", "every"] | None = None
    reentry_days: int | None = Field(default=None, ge=1, le=MAX_REENTRY_DAYS)
    delay_seconds: int | None = Field(default=None, ge=0, le=MAX_DELAY_SECONDS)
    goal_event: str | None = Field(default=None, min_length=1, max_length=200)
    goal_days: int | None = Field(default=None, ge=1, le=MAX_GOAL_DAYS)
    goal_revenue_property: str | None = Field(default=None, max_length=100)
    cost_per_message: float | None = Field(default=None, ge=0, le=MAX_COST_PER_MESSAGE)
    seed_addresses: list[str] | None = Field(default=None, max_length=50)


class VariantRead(BaseModel):
    """A saved arm."""

    model_config = ConfigDict(from_attributes=True)

    key: str
    name: str
    template_id: int | None
    content: dict[str, Any]
    weight: int


class CampaignRead(BaseModel):
    """A saved campaign."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str
    kind: str
    status: str
    status_reason: str
    channel: str
    topic: str
    message_kind: str
    priority: int
    segment_ids: list[int]
    exclude_segment_ids: list[int]
    variants: list[VariantRead] = Field(default_factory=list)
    control_percent: float
    experiment: dict[str, Any]
    winner_variant: str | None
    winner_decided_at: datetime | None
    send_at: datetime | None
    local_time: str | None
    throttle_per_hour: int | None
    trigger: dict[str, Any]
    reentry: str
    reentry_days: int | None
    delay_seconds: int
    goal_event: str
    goal_days: int
    goal_revenue_property: str
    cost_per_message: float | None
    seed_addresses: list[str]
    audience_size: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    archived_at: datetime | None


class AudienceEstimate(BaseModel):
    """Who a broadcast would reach now, before sending."""

    total: int
    control: int
    reachable: int
    no_address: int
    no_consent: int
    suppressed: int
    capped: int = 0
    sample: list[int]


class IntervalRead(BaseModel):
    """A 95 % confidence interval."""

    low: float
    high: float


class ArmRead(BaseModel):
    """The results of one arm (a variant or the control group)."""

    key: str
    name: str
    recipients: int
    sent: int
    delivered: int
    opened: int
    clicked: int
    skipped: int
    failed: int
    conversions: int
    revenue: float
    conversion_rate: float
    conversion_interval: IntervalRead
    lift: float | None = None
    lift_interval: IntervalRead | None = None
    relative_lift: float | None = None
    p_value: float | None = None
    probability_best: float | None = None


class CampaignStats(BaseModel):
    """Per-arm results, the control group, and totals with cost and ROI."""

    campaign_id: int
    status: str
    metric: str
    arms: list[ArmRead]
    control: ArmRead | None
    waiting: int
    recipients: int
    messages: int
    conversions: int
    revenue: float
    cost: float | None
    roi: float | None
    incremental_conversions: float | None
    incremental_revenue: float | None


class TestSend(BaseModel):
    """Send each variant once to these addresses (default: the campaign's seed addresses), personalised
    as ``profile_id`` when given."""

    addresses: list[str] = Field(default_factory=list, max_length=50)
    profile_id: Id | None = None
    variants: list[str] = Field(default_factory=list)


class TestSendResult(BaseModel):
    """What each test message became."""

    results: list[dict[str, Any]]
