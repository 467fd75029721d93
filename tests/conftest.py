"""Fixtures: every storage test runs on SQLite and on a real PostgreSQL server started here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.app import create_app
from rapport.config import Settings
from rapport.kit.clock import Clock, SystemClock
from rapport.runtime import Runtime, build_runtime
from tests.support.databases import PostgresFactory, SqliteFactory
from tests.support.pg import PgCluster
from tests.support.tenants import Tenant, make_tenant

BACKENDS = ["sqlite", "postgresql"]


def _worker_name(config: pytest.Config) -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A superuser URL to a PostgreSQL server: RAPPORT_TEST_DATABASE_URL, or a throwaway cluster."""
    given = os.environ.get("RAPPORT_TEST_DATABASE_URL")
    if given:
        yield given
        return
    cluster = PgCluster()
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_factory(pg_server_url: str, request: pytest.FixtureRequest) -> Iterator[PostgresFactory]:
    """Makes migrated PostgreSQL databases for tests."""
    factory = PostgresFactory(pg_server_url, prefix=f"rapport_test_{_worker_name(request.config)}")
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def sqlite_factory(tmp_path_factory: pytest.TempPathFactory) -> SqliteFactory:
    """Makes migrated SQLite files for tests."""
    return SqliteFactory(tmp_path_factory.mktemp("sqlite-template"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of this test run: sqlite or postgresql."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database of the current backend (reused and emptied on PostgreSQL)."""
    if backend == "sqlite":
        return str(request.getfixturevalue("sqlite_factory").new_url(tmp_path))
    factory: PostgresFactory = request.getfixturevalue("pg_factory")
    return factory.shared_url()


@pytest.fixture
def fresh_db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a brand-new migrated database, for tests that change the schema itself."""
    if backend == "sqlite":
        yield request.getfixturevalue("sqlite_factory").new_url(tmp_path)
        return
    factory: PostgresFactory = request.getfixturevalue("pg_factory")
    url = factory.new_url()
    yield url
    factory.drop(url)


@pytest.fixture
def clock() -> Clock:
    """The clock the runtime uses; tests override it with a FakeClock."""
    return SystemClock()


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Settings for a test: the fresh database, a fixed secret, no in-process worker."""
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        log_json=True,
        db_pool_size=5,
    )


@pytest.fixture
def runtime(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    """The runtime over the test database."""
    rt = build_runtime(settings, clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    """The application wired to the test runtime (worker not started)."""
    return create_app(runtime.settings, runtime=runtime, start_worker=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client bound to the application."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def tenant(runtime: Runtime) -> Tenant:
    """One workspace with keys and users."""
    return make_tenant(runtime, "acme")


@pytest.fixture
def other_tenant(runtime: Runtime, tenant: Tenant) -> Tenant:
    """A second workspace, for isolation tests (R20)."""
    return make_tenant(runtime, "globex")
