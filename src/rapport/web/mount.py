"""Mount the marketer UI routes and static files on the application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from rapport.runtime import Runtime


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Add the UI's routes and static files to ``app``."""

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=303)
