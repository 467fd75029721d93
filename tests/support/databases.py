"""Fresh, migrated databases per test, cloned from a template migrated once per session."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

import rapport.models  # noqa: F401  (every table on the metadata)
from rapport.db import migrate
from rapport.db.base import Base
from rapport.db.engine import build_engine, normalize_url

_counter = itertools.count()


class SqliteFactory:
    """Copies a migrated template file for each test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.template = workdir / "template.db"
        engine = build_engine(f"sqlite:///{self.template}")
        migrate.upgrade(engine)
        engine.dispose()  # the last connection to close checkpoints the WAL into the file

    def new_url(self, tmp_path: Path) -> str:
        """Return the URL of a fresh migrated database file."""
        target = tmp_path / f"rapport-{next(_counter)}.db"
        shutil.copyfile(self.template, target)
        return f"sqlite:///{target}"


class PostgresFactory:
    """Creates each test's database from a migrated template database."""

    def __init__(self, server_url: str, *, prefix: str) -> None:
        self.server_url = normalize_url(server_url)
        self.prefix = prefix
        self.template = f"{prefix}_template"
        self.admin = create_engine(self.server_url, isolation_level="AUTOCOMMIT", pool_size=2)
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}"'))
            conn.execute(text(f'CREATE DATABASE "{self.template}"'))
        engine = build_engine(self._url_for(self.template), pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        self.created: list[str] = []
        self._shared: str | None = None
        self._shared_engine: Engine | None = None

    def _url_for(self, name: str) -> str:
        return make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def new_url(self) -> str:
        """Return the URL of a fresh migrated database."""
        name = f"{self.prefix}_{next(_counter)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
        self.created.append(name)
        return self._url_for(name)

    def shared_url(self) -> str:
        """Return the URL of this process's reusable test database, emptied (much faster than a new one).

        Tests that change the schema itself (migrations down and up) use ``new_url`` instead.
        """
        if self._shared is None:
            self._shared = self.new_url()
            self._shared_engine = create_engine(self._shared, pool_size=1)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        assert self._shared_engine is not None
        with self._shared_engine.begin() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '20s'"))
            conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        return self._shared

    def drop(self, url: str) -> None:
        """Drop a test database (its engines must be disposed)."""
        name = make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        """Drop the template and dispose of the admin engine."""
        if self._shared_engine is not None:
            self._shared_engine.dispose()
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)'))
        self.admin.dispose()
