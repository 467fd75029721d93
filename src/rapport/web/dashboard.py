"""The dashboard page and the JSON series its charts fetch."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.api.deps import ReadDbSession
from rapport.campaigns import service as campaigns_service
from rapport.errors import Unauthenticated, ValidationFailed
from rapport.messaging import repository as messaging_repository
from rapport.process import scores_service
from rapport.process.scores.clv import CHURN_BANDS
from rapport.process.scores.rfm import SEGMENTS
from rapport.profiles.figures import customer_figures
from rapport.runtime import Runtime
from rapport.web.customers import humanise
from rapport.web.rendering import render
from rapport.web.series import MetricRegistry, daily_series, preferred_metric
from rapport.web.session import UiPage, UiRoute, session_user

router = APIRouter(route_class=UiRoute, include_in_schema=False)
api_router = APIRouter(prefix="/ui/api", include_in_schema=False)

DEFAULT_RANGE_DAYS = 30
RFM_ORDER = tuple(segment.value for segment in SEGMENTS)
CHURN_ORDER = tuple(band.value for band in CHURN_BANDS)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _metrics(request: Request) -> MetricRegistry:
    registry: MetricRegistry = request.app.state.dashboard_metrics
    return registry


def _parse_day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def default_range(today: date, days: int = DEFAULT_RANGE_DAYS) -> tuple[date, date]:
    """Return the default chart range: the last ``days`` days up to today."""
    return today - timedelta(days=days - 1), today


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a server-drawn bar chart: a label, a count and its share of the largest bar (0-100)."""

    key: str
    label: str
    count: int
    share: float
    percent: float


@dataclass(frozen=True, slots=True)
class Distribution:
    """Counts per category from the latest finished score run of a kind (None when never run)."""

    bars: list[Bar]
    total: int
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class CampaignResult:
    """One campaign's attributed revenue, for the dashboard's revenue card (filled by the campaign work)."""

    campaign_id: int
    name: str
    revenue: float
    conversions: int


def campaign_results(db: Session, *, workspace_id: int, first: date, last: date) -> list[CampaignResult]:
    """Return the top campaigns by revenue their recipients brought in [first, last] (control excluded)."""
    rows = campaigns_service.top_campaigns(
        db,
        workspace_id=workspace_id,
        since=datetime.combine(first, time(), tzinfo=UTC),
        until=datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC),
    )
    return [
        CampaignResult(campaign_id=cid, name=name, revenue=revenue, conversions=n)
        for cid, name, n, revenue in rows
    ]


def bars_of(counts: Mapping[str, int], order: Sequence[str]) -> list[Bar]:
    """Return bars in ``order`` (then any other keys by name), sized against the largest count."""
    keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
    top = max((counts[k] for k in keys), default=0)
    total = sum(counts[k] for k in keys)
    return [
        Bar(
            key=k,
            label=humanise(k),
            count=int(counts[k]),
            share=round(100 * counts[k] / top, 2) if top else 0.0,
            percent=round(100 * counts[k] / total, 1) if total else 0.0,
        )
        for k in keys
    ]


def score_distribution(
    db: Session, *, workspace_id: int, kind: str, metric: str, order: Sequence[str]
) -> Distribution:
    """Return a distribution recorded by the latest finished score run of ``kind`` (e.g. RFM segments)."""
    for run in scores_service.list_runs(db, workspace_id=workspace_id, kind=kind, limit=10):
        if run.status == "done":
            counts = {str(k): int(v) for k, v in ((run.metrics or {}).get(metric) or {}).items()}
            return Distribution(bars_of(counts, order), sum(counts.values()), run.finished_at)
    return Distribution([], 0, None)


def _email_requires_opt_in(db: Session, workspace_id: int) -> bool:
    workspace = accounts_service.get_workspace(db, workspace_id)
    return bool(((workspace.settings or {}).get("consent") or {}).get("email_requires_opt_in", True))


@router.get("/")
def dashboard(
    request: Request,
    ui: UiPage,
    db: ReadDbSession,
    first: Annotated[str | None, Query(alias="from")] = None,
    last: Annotated[str | None, Query(alias="to")] = None,
    metric: str | None = None,
) -> Response:
    """Show the workspace's customers, reach, consent, scores and messages, and the chart over time."""
    now = _runtime(request).clock.now()
    today = now.date()
    start, end = default_range(today)
    chosen_first, chosen_last = _parse_day(first), _parse_day(last)
    if chosen_first and chosen_last and chosen_first <= chosen_last:
        start, end = chosen_first, chosen_last
    keys = accounts_service.list_keys(db, workspace_id=ui.workspace_id)
    kinds = Counter(key.kind for key in keys)
    roles = Counter(
        membership.role for membership, _user in accounts_service.list_members(db, ui.workspace_id)
    )
    registry = _metrics(request)
    activity = daily_series(
        db,
        registry.get("audit_entries"),
        workspace_id=ui.workspace_id,
        first=today - timedelta(days=DEFAULT_RANGE_DAYS - 1),
        last=today,
    )
    figures = customer_figures(
        db,
        workspace_id=ui.workspace_id,
        now=now,
        email_requires_opt_in=_email_requires_opt_in(db, ui.workspace_id),
    )
    messages = messaging_repository.status_counts(db, workspace_id=ui.workspace_id)
    chosen_metric = metric if metric in registry.metrics else preferred_metric(db, ui.workspace_id)
    context: dict[str, Any] = {
        "title": "Dashboard",
        "figures": figures,
        "messages": messages,
        "rfm": score_distribution(
            db, workspace_id=ui.workspace_id, kind="rfm", metric="segments", order=RFM_ORDER
        ),
        "churn": score_distribution(
            db, workspace_id=ui.workspace_id, kind="clv", metric="churn_bands", order=CHURN_ORDER
        ),
        "campaigns": campaign_results(db, workspace_id=ui.workspace_id, first=start, last=end),
        "write_keys": kinds.get("write", 0),
        "secret_keys": kinds.get("secret", 0),
        "members": sum(roles.values()),
        "roles": [
            (role.value, roles.get(role.value, 0)) for role in (Role.ADMIN, Role.MARKETER, Role.VIEWER)
        ],
        "activity_total": activity["total"],
        "metrics": list(registry),
        "chosen_metric": chosen_metric,
        "range_from": start.isoformat(),
        "range_to": end.isoformat(),
        "today": today.isoformat(),
    }
    return render(request, "dashboard.html", context)


@api_router.get("/dashboard/series")
def dashboard_series(
    request: Request,
    db: ReadDbSession,
    metric: str = "audit_entries",
    first: Annotated[str | None, Query(alias="from")] = None,
    last: Annotated[str | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    """Return one metric per day for the signed-in member's workspace (JSON for the charts)."""
    user = session_user(request)
    if user is None:
        raise Unauthenticated("not logged in")
    today = _runtime(request).clock.now().date()
    default_first, default_last = default_range(today)
    start = _parse_day(first) if first else default_first
    end = _parse_day(last) if last else default_last
    if start is None or end is None:
        raise ValidationFailed("'from' and 'to' must be dates like 2026-01-31")
    return daily_series(
        db, _metrics(request).get(metric), workspace_id=user.workspace_id, first=start, last=end
    )
