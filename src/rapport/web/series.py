"""Daily time series for the dashboard's charts, behind a small registry later work adds metrics to.

A metric is a name, a label and a function returning ``{day: value}`` for one workspace over an inclusive
range of UTC days; days without a value are filled with zero by :func:`daily_series`. Example::

    registry.add(SeriesMetric("messages_sent", "Messages sent per day", "messages", messages_per_day))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from rapport.campaigns import service as campaigns_service
from rapport.errors import ValidationFailed
from rapport.models import AuditEntry, Event

#: The longest range a chart asks for, in days.
MAX_RANGE_DAYS = 731

DailyValues = Callable[[Session, int, date, date], Mapping[date, float]]


@dataclass(frozen=True, slots=True)
class SeriesMetric:
    """A chartable per-day metric of a workspace."""

    name: str
    label: str
    unit: str
    daily: DailyValues


@dataclass
class MetricRegistry:
    """The metrics the dashboard can chart, in the order the selector lists them."""

    metrics: dict[str, SeriesMetric] = field(default_factory=dict)

    def add(self, metric: SeriesMetric) -> None:
        """Register a metric; names are unique."""
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name!r} is registered twice")
        self.metrics[metric.name] = metric

    def get(self, name: str) -> SeriesMetric:
        """Return the metric called ``name`` or raise ValidationFailed."""
        metric = self.metrics.get(name)
        if metric is None:
            raise ValidationFailed(
                f"unknown metric {name!r}", details={"known": sorted(self.metrics)}, code="unknown_metric"
            )
        return metric

    def __iter__(self) -> Iterator[SeriesMetric]:
        return iter(self.metrics.values())


def day_start(day: date) -> datetime:
    """Return midnight UTC at the start of ``day``."""
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_day(column: Any, dialect: str) -> ColumnElement[str]:
    """Return an SQL expression giving the UTC day of a timestamp column as ``YYYY-MM-DD`` text."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def days_in(first: date, last: date) -> list[date]:
    """Return every day from ``first`` to ``last`` inclusive."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def check_range(first: date, last: date) -> None:
    """Refuse a range that is backwards or longer than :data:`MAX_RANGE_DAYS`."""
    if last < first:
        raise ValidationFailed("'from' must not be after 'to'", details={"from": str(first), "to": str(last)})
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValidationFailed(f"a chart covers at most {MAX_RANGE_DAYS} days")


def daily_series(
    db: Session, metric: SeriesMetric, *, workspace_id: int, first: date, last: date
) -> dict[str, Any]:
    """Return the chart payload of ``metric`` for a workspace, one point per day, zeros included."""
    check_range(first, last)
    values = metric.daily(db, workspace_id, first, last)
    points = [{"date": day.isoformat(), "value": values.get(day, 0)} for day in days_in(first, last)]
    return {
        "metric": metric.name,
        "label": metric.label,
        "unit": metric.unit,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "total": sum(p["value"] for p in points),
        "points": points,
    }


def audit_entries_per_day(db: Session, workspace_id: int, first: date, last: date) -> dict[date, float]:
    """Count the workspace's audit entries per UTC day."""
    day = utc_day(AuditEntry.created_at, db.get_bind().dialect.name).label("day")
    rows = db.execute(
        select(day, func.count())
        .where(
            AuditEntry.workspace_id == workspace_id,
            AuditEntry.created_at >= day_start(first),
            AuditEntry.created_at < day_start(last + timedelta(days=1)),
        )
        .group_by(day)
    ).all()
    return {date.fromisoformat(str(d)): int(n) for d, n in rows}


AUDIT_ENTRIES = SeriesMetric(
    name="audit_entries",
    label="Audit entries per day",
    unit="entries",
    daily=audit_entries_per_day,
)


def events_per_day(names: tuple[str, ...] | None = None, *, suffix: str | None = None) -> DailyValues:
    """Return a daily counter of the workspace's events (all, by name, or by name suffix like ``_sent``):
    the events of customers, i.e. linked to a profile (the index by name and time holds those alone)."""

    def daily(db: Session, workspace_id: int, first: date, last: date) -> dict[date, float]:
        day = utc_day(Event.timestamp, db.get_bind().dialect.name).label("day")
        stmt = select(day, func.count()).where(
            Event.workspace_id == workspace_id,
            Event.profile_id.is_not(None),
            Event.timestamp >= day_start(first),
            Event.timestamp < day_start(last + timedelta(days=1)),
        )
        if names:
            stmt = stmt.where(Event.event.in_(names))
        if suffix:
            stmt = stmt.where(Event.event.like(f"%{suffix}"))
        rows = db.execute(stmt.group_by(day)).all()
        return {date.fromisoformat(str(d)): int(n) for d, n in rows}

    return daily


EVENTS = SeriesMetric("events", "Events per day", "events", events_per_day())
PURCHASES = SeriesMetric("purchases", "Purchases per day", "orders", events_per_day(("order_completed",)))
#: Channels whose delivery feedback events (``<channel>_<action>``) count as messages.
MESSAGE_CHANNELS = ("email", "sms", "push", "inapp", "webhook")


def message_events(action: str) -> tuple[str, ...]:
    """Return the feedback event names of one action on every channel, e.g. ``email_opened``."""
    return tuple(f"{channel}_{action}" for channel in MESSAGE_CHANNELS)


MESSAGES_SENT = SeriesMetric(
    "messages_sent", "Messages sent per day", "messages", events_per_day(message_events("sent"))
)
MESSAGES_DELIVERED = SeriesMetric(
    "messages_delivered",
    "Messages delivered per day",
    "messages",
    events_per_day(message_events("delivered")),
)
MESSAGES_OPENED = SeriesMetric(
    "messages_opened", "Messages opened per day", "opens", events_per_day(message_events("opened"))
)
MESSAGES_CLICKED = SeriesMetric(
    "messages_clicked", "Message clicks per day", "clicks", events_per_day(message_events("clicked"))
)


def conversions_per_day(*, revenue: bool) -> DailyValues:
    """Return a daily counter of campaign conversions (or their revenue), control groups excluded."""

    def daily(db: Session, workspace_id: int, first: date, last: date) -> dict[date, float]:
        return campaigns_service.conversions_per_day(
            db,
            workspace_id=workspace_id,
            since=day_start(first),
            until=day_start(last + timedelta(days=1)),
            revenue=revenue,
        )

    return daily


MESSAGES_CONVERTED = SeriesMetric(
    "messages_converted", "Campaign conversions per day", "conversions", conversions_per_day(revenue=False)
)
REVENUE_ATTRIBUTED = SeriesMetric(
    "revenue_attributed", "Revenue from campaigns per day", "revenue", conversions_per_day(revenue=True)
)
EMAILS_OPENED = SeriesMetric(
    "emails_opened", "Emails opened per day", "opens", events_per_day(("email_opened",))
)


def has_events(db: Session, workspace_id: int, names: tuple[str, ...] | None) -> bool:
    """Say whether the workspace has any linked event (of these names); an indexed probe, not a count."""
    stmt = select(Event.id).where(Event.workspace_id == workspace_id, Event.profile_id.is_not(None))
    if names:
        stmt = stmt.where(Event.event.in_(names))
    return db.scalar(stmt.limit(1)) is not None


def preferred_metric(db: Session, workspace_id: int) -> str:
    """Return the chart's default metric: messages sent, else delivered, else events, else audit entries."""
    if has_events(db, workspace_id, message_events("sent")):
        return "messages_sent"
    if has_events(db, workspace_id, message_events("delivered")):
        return "messages_delivered"
    if has_events(db, workspace_id, None):
        return "events"
    return "audit_entries"


def default_metrics() -> MetricRegistry:
    """Return the registry with every metric that exists so far; later work adds its own here."""
    registry = MetricRegistry()
    for metric in (
        MESSAGES_SENT,
        MESSAGES_DELIVERED,
        MESSAGES_OPENED,
        MESSAGES_CLICKED,
        MESSAGES_CONVERTED,
        REVENUE_ATTRIBUTED,
        EVENTS,
        PURCHASES,
        EMAILS_OPENED,
        AUDIT_ENTRIES,
    ):
        registry.add(metric)
    return registry
