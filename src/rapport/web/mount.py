"""Mount the marketer UI routes and static files on the application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rapport.runtime import Runtime
from rapport.web import dashboard, login, sections, settings
from rapport.web.rendering import STATIC_DIR, build_templates
from rapport.web.series import default_metrics


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Add the UI's routes, templates, chart metrics and static files to ``app``."""
    app.state.ui_templates = build_templates()
    app.state.dashboard_metrics = default_metrics()
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(login.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard.api_router)
    app.include_router(settings.router)
    app.include_router(sections.build_router())
