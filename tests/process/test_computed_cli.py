"""``rapport traits`` / ``scores`` / ``lifestyle`` commands against a real database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rapport.cli import app
from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.runtime import Runtime
from tests.support.tenants import Tenant


def test_cli_commands(runtime: Runtime, tenant: Tenant, db_url: str, tmp_path: Path) -> None:
    from rapport.app import wire_runtime

    wire_runtime(runtime)
    ws = tenant.workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": "a", "postcode": "LS1 4AP"}])
    import_event_rows(
        runtime,
        workspace_id=ws,
        rows=[{"type": "track", "event": "order_completed", "userId": "a", "properties": {"total": 5}}],
    )
    runner = CliRunner()
    base = ["--workspace", tenant.slug, "--database-url", db_url]
    listed = runner.invoke(app, ["traits", "list", *base])
    assert listed.exit_code == 0, listed.output
    assert "total_orders" in listed.output
    made = runner.invoke(
        app, ["traits", "create", "n_orders", "--event", "order_completed", "--aggregation", "count", *base]
    )
    assert made.exit_code == 0, made.output
    again = runner.invoke(app, ["traits", "recompute", "n_orders", *base])
    assert again.exit_code == 0 and "1 profiles recomputed" in again.output, again.output
    scored = runner.invoke(app, ["scores", "run", "rfm", *base])
    assert scored.exit_code == 0 and "rfm" in scored.output, scored.output
    assert "stages (s): read" in scored.output and "write" in scored.output, scored.output
    csv = tmp_path / "t.csv"
    csv.write_text("key,group\nLS1,Leeds Centre\n")
    up = runner.invoke(app, ["lifestyle", "upload", str(csv), "--name", "t", *base])
    assert up.exit_code == 0 and "1 profiles matched" in up.output, up.output
