"""``rapport segments`` in a real subprocess: preview, create, list, members --csv, errors with a caret."""

from __future__ import annotations

from typer.testing import CliRunner

from rapport.cli import app
from rapport.runtime import Runtime
from tests.segments import sqldata
from tests.segments.typed import CATALOG
from tests.support.tenants import Tenant


class _Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = code, stdout, stderr


def rapport(*args: str, database_url: str, check: bool = True) -> _Result:
    """Run the CLI in-process (the subprocess form is covered by tests/test_cli.py)."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env={"RAPPORT_DATABASE_URL": database_url, "COLUMNS": "200"})
    if check:
        assert result.exit_code == 0, result.stdout + result.stderr
    return _Result(result.exit_code, result.stdout, result.stderr)


def test_segments_commands(runtime: Runtime, tenant: Tenant, db_url: str) -> None:
    from rapport.segments import ProfileFacts

    facts = [ProfileFacts("x", {"city": "Leeds"}), ProfileFacts("x", {"city": "York"})]
    with runtime.engine.begin() as conn:
        sqldata.load(conn, tenant.workspace_id, facts, catalog=CATALOG, segment_ids={}, first_id=10)
        conn.execute(
            sqldata.PROFILES.update().where(sqldata.PROFILES.c.id == 10).values(email="=x@leeds.test")
        )
    out = rapport("segments", "preview", 'city = "Leeds"', database_url=db_url).stdout
    assert "1 profiles match" in out and "=x@leeds.test" in out
    bad = rapport("segments", "preview", "cty = 1", database_url=db_url, check=False)
    assert bad.returncode == 1 and "unknown field 'cty'" in bad.stderr and "^" in bad.stderr
    assert "2 members" in rapport("segments", "create", "Known", "city is set", database_url=db_url).stdout
    listed = rapport("segments", "list", database_url=db_url).stdout
    assert "Known" in listed and "city is set" in listed
    csv = rapport("segments", "members", "1", "--csv", database_url=db_url).stdout.splitlines()
    assert csv[0] == "profile_id,email,phone,name,entered_at" and csv[1].startswith("10,'=x@leeds.test,")
    assert len(csv) == 3


def test_an_oversized_count_is_explained_with_a_caret(tenant: Tenant, db_url: str) -> None:
    text = "purchased at least 100000000000000000000 times in last 30 days"
    for command in (("segments", "preview", text), ("segments", "create", "Too many", text)):
        bad = rapport(*command, database_url=db_url, check=False)
        assert bad.returncode == 1, bad.stdout + bad.stderr
        message, source, caret = bad.stderr.splitlines()
        assert "error" in message and message.endswith(
            ": line 1, column 20: a count must be at most 1,000,000,000"
        )
        assert (source, caret) == (f"  {text}", "  " + " " * 19 + "^")
