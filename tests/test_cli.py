"""The ``rapport`` command end to end: migrate, administer, serve a real process on both databases.

The entry point itself runs as a subprocess (``python -m rapport``) where it matters — starting, migrating,
serving; the administration commands run the same Typer application in-process, which saves a Python start
per command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from rapport.cli import app as cli_app
from rapport.db import migrate
from rapport.db.engine import build_engine
from tests.support.server import RapportServer


def rapport(
    *args: str,
    database_url: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess (the real entry point) and return the completed process."""
    result = subprocess.run(
        [sys.executable, "-m", "rapport", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "RAPPORT_DATABASE_URL": database_url, "COLUMNS": "200", **(env or {})},
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def cli(*args: str, database_url: str, env: dict[str, str] | None = None, check: bool = True) -> Result:
    """Run the Typer application in this process with the given environment."""
    result = CliRunner().invoke(
        cli_app, list(args), env={"RAPPORT_DATABASE_URL": database_url, "COLUMNS": "200", **(env or {})}
    )
    if check:
        assert result.exit_code == 0, result.output
    return result


def test_admin_commands_then_serve_with_the_issued_key(db_url: str, tmp_path: Path) -> None:
    rapport("workspaces", "create", "shop", "--name", "The Shop", database_url=db_url)
    cli(
        "users",
        "create",
        "owner@shop.test",
        "--role",
        "admin",
        database_url=db_url,
        env={"RAPPORT_NEW_USER_PASSWORD": "a-long-password"},
    )
    made = cli(
        "keys", "create", "secret", "--scope", "profiles:read", "--name", "reporting", database_url=db_url
    )
    key = re.search(r"(sk_[A-Za-z0-9_\-]+)", made.output)
    assert key, made.output
    listed = cli("keys", "list", database_url=db_url).output
    assert "reporting" in listed and key.group(1) not in listed
    bad = cli("keys", "create", "secret", "--scope", "root", database_url=db_url, check=False)
    assert bad.exit_code == 1 and "unknown scopes: root" in bad.output

    server = RapportServer(db_url, extra_args=["--no-worker"], workdir=tmp_path).start()
    try:
        answer = httpx.get(
            f"{server.url}/api/v1/workspace", headers={"Authorization": f"Bearer {key.group(1)}"}
        )
        assert answer.status_code == 200
        assert answer.json()["slug"] == "shop"
        assert httpx.get(f"{server.url}/api/v1/workspace").status_code == 401
    finally:
        server.stop()
    key_id = re.search(r"key (\d+) for shop", made.output)
    assert key_id
    cli("keys", "revoke", key_id.group(1), database_url=db_url)
    assert "reporting" not in cli("keys", "list", database_url=db_url).output


def test_serve_migrates_a_new_sqlite_file_on_first_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    server = RapportServer(url, extra_args=["--no-worker"], workdir=tmp_path).start()
    try:
        health = httpx.get(f"{server.url}/healthz").json()
        assert health["status"] == "ok" and health["database"] == "sqlite"
    finally:
        server.stop()
    with (tmp_path / "new.db").open("rb") as f:
        assert f.read(16) == b"SQLite format 3\x00"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_serve_refuses_an_unmigrated_postgresql_and_migrate_fixes_it(
    fresh_db_url: str, tmp_path: Path
) -> None:
    engine = build_engine(fresh_db_url, pool_size=1)
    migrate.downgrade(engine, "base")
    engine.dispose()
    refused = rapport("serve", "--port", "1", database_url=fresh_db_url, check=False, cwd=tmp_path)
    assert refused.returncode == 1
    assert "rapport migrate" in refused.stdout
    out = cli("migrate", database_url=fresh_db_url).output
    assert "was empty" in out
    server = RapportServer(fresh_db_url, extra_args=["--no-worker"], workdir=tmp_path).start()
    try:
        assert httpx.get(f"{server.url}/healthz").json()["database"] == "postgresql"
    finally:
        server.stop()
