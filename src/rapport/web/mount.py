"""Mount the marketer UI routes and static files on the application.

A domain that ships UI pages (``rapport/<domain>/web.py``: an ``APIRouter(route_class=UiRoute)`` whose
handlers take ``UiPage`` / ``UiPost`` / ``UiEditorPost`` / ``UiAdminPost``) adds one line below with
:func:`include_ui_router`; the UI tests then check CSRF and page rendering on its routes too.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from rapport.runtime import Runtime
from rapport.web import (
    campaigns_ui,
    catalog_ui,
    customers,
    dashboard,
    data_ui,
    login,
    sections,
    segments,
    settings,
    stores_ui,
    templates_ui,
)
from rapport.web.rendering import STATIC_DIR, build_templates
from rapport.web.series import default_metrics


def include_ui_router(app: FastAPI, router: APIRouter) -> None:
    """Include a router of UI pages and remember it (``app.state.ui_routers``) for the UI-wide tests."""
    app.state.ui_routers.append(router)
    app.include_router(router)


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Add the UI's routes, templates, chart metrics and static files to ``app``."""
    app.state.ui_templates = build_templates()
    app.state.dashboard_metrics = default_metrics()
    app.state.ui_routers = []
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(dashboard.api_router)
    include_ui_router(app, login.router)
    include_ui_router(app, dashboard.router)
    include_ui_router(app, stores_ui.router)
    include_ui_router(app, settings.router)
    include_ui_router(app, catalog_ui.router)
    include_ui_router(app, segments.router)
    include_ui_router(app, customers.router)
    include_ui_router(app, templates_ui.router)
    include_ui_router(app, campaigns_ui.router)
    for data_router in data_ui.ROUTERS:
        include_ui_router(app, data_router)
    include_ui_router(app, sections.build_router())
