"""What the composition root builds once and every edge (request, job, CLI command) uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from rapport.config import Settings
from rapport.db.engine import build_engine, build_sessionmaker
from rapport.kit.clock import Clock, SystemClock


@dataclass
class Runtime:
    """Settings, engine, session factories, clock and the registered ports (channels, …)."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]
    clock: Clock
    secret_key: str
    ports: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        """Tell whether the store is the embedded SQLite file."""
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, secret_key: str | None = None
) -> Runtime:
    """Build the runtime for ``settings``; nothing connects until first use."""
    engine = build_engine(settings.database_url, pool_size=settings.db_pool_size)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=build_sessionmaker(engine),
        read_sessions=build_sessionmaker(engine, readonly=True),
        clock=clock or SystemClock(),
        secret_key=secret_key or settings.resolved_secret_key(),
    )
