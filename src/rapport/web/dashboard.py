"""The dashboard page and the JSON series its charts fetch."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from rapport.accounts import service as accounts_service
from rapport.accounts.roles import Role
from rapport.api.deps import ReadDbSession
from rapport.errors import Unauthenticated, ValidationFailed
from rapport.messaging import repository as messaging_repository
from rapport.profiles import service as profiles_service
from rapport.runtime import Runtime
from rapport.web.rendering import render
from rapport.web.series import MetricRegistry, daily_series
from rapport.web.session import UiPage, UiRoute, session_user

router = APIRouter(route_class=UiRoute, include_in_schema=False)
api_router = APIRouter(prefix="/ui/api", include_in_schema=False)

DEFAULT_RANGE_DAYS = 30


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


@router.get("/")
def dashboard(
    request: Request,
    ui: UiPage,
    db: ReadDbSession,
    first: Annotated[str | None, Query(alias="from")] = None,
    last: Annotated[str | None, Query(alias="to")] = None,
    metric: str = "audit_entries",
) -> Response:
    """Show the workspace's figures that exist so far and the activity chart."""
    today = _runtime(request).clock.now().date()
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
    customers = profiles_service.overview(db, workspace_id=ui.workspace_id)
    messages = messaging_repository.status_counts(db, workspace_id=ui.workspace_id)
    context: dict[str, Any] = {
        "title": "Dashboard",
        "customers": customers,
        "messages": messages,
        "write_keys": kinds.get("write", 0),
        "secret_keys": kinds.get("secret", 0),
        "members": sum(roles.values()),
        "roles": [
            (role.value, roles.get(role.value, 0)) for role in (Role.ADMIN, Role.MARKETER, Role.VIEWER)
        ],
        "activity_total": activity["total"],
        "metrics": list(registry),
        "chosen_metric": metric if metric in registry.metrics else "audit_entries",
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
