"""uvicorn factory of the Rapport application for the HTTP workloads (settings from RAPPORT_* variables)."""

from __future__ import annotations

from fastapi import FastAPI

from rapport.app import create_app
from rapport.config import Settings
from rapport.kit.logs import configure_logging


def build() -> FastAPI:
    """Build Rapport as ``rapport serve`` does, without the in-process worker (ingest only)."""
    settings = Settings()
    configure_logging(level="WARNING", json_lines=True)
    return create_app(settings, start_worker=False)
