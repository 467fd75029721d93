"""A throwaway PostgreSQL cluster for the PostgreSQL workloads: the test suite's, but durable (fsync,
synchronous_commit and full_page_writes on, PostgreSQL's defaults) so an acknowledged event costs what it
costs in production. Until 2026-11-24 the workloads ran on the test suite's settings (all three off)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.support.pg import PgCluster


@dataclass
class PgServer:
    """A running cluster (or the server of RAPPORT_BENCH_DATABASE_URL) and its superuser URL."""

    url: str
    cluster: PgCluster | None

    def version(self) -> str:
        """Return the server's version string."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return str(conn.execute(text("SHOW server_version")).scalar())
        finally:
            engine.dispose()

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """(Re)create a database (empty, or a copy of ``template``) and return its URL."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                copy = f' TEMPLATE "{template}"' if template else ""
                conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        finally:
            engine.dispose()
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        """Drop a database."""
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()

    def stop(self) -> None:
        """Stop the cluster (if this run started it)."""
        if self.cluster is not None:
            self.cluster.stop()


def start_cluster() -> PgServer:
    """Start a throwaway cluster, or use RAPPORT_BENCH_DATABASE_URL (a superuser URL) when set."""
    given = os.environ.get("RAPPORT_BENCH_DATABASE_URL")
    if given:
        return PgServer(given.replace("postgresql://", "postgresql+psycopg://", 1), None)
    cluster = PgCluster(durable=True)  # fsync and synchronous commit on, as in production
    return PgServer(cluster.start(), cluster)
