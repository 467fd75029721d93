"""``rapport campaigns``: create from a JSON file, launch, pause, resume, cancel, stats."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rapport.cli import app
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.support.tenants import Tenant


def _rapport(database_url: str, *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"RAPPORT_DATABASE_URL": database_url, "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_campaign_from_a_json_file_through_its_lifecycle(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    url = runtime.settings.database_url
    make_people(runtime, tenant, 3, extra={"city": "Leeds"})
    _rapport(url, "segments", "create", "Leeds", 'city = "Leeds"', "--workspace", tenant.slug)
    body = {
        "name": "Birthday",
        "kind": "triggered",
        "channel": "email",
        "trigger": {"type": "event", "event": "signed_up"},
        "variants": [{"key": "A", "content": {"subject": "Welcome", "text": "Hi"}}],
        "control_percent": 10,
    }
    spec = tmp_path / "campaign.json"
    spec.write_text(json.dumps(body))
    assert "campaign 1 'Birthday': active" in _rapport(url, "campaigns", "create", str(spec), "--launch",
                                                        "--workspace", tenant.slug)  # fmt: skip
    listed = _rapport(url, "campaigns", "list", "--workspace", tenant.slug)
    assert "Birthday" in listed and "triggered" in listed and "active" in listed
    assert "paused" in _rapport(url, "campaigns", "pause", "1", "--workspace", tenant.slug)
    assert "active" in _rapport(url, "campaigns", "resume", "1", "--workspace", tenant.slug)
    stats = json.loads(_rapport(url, "campaigns", "stats", "1", "--json", "--workspace", tenant.slug))
    assert stats["campaign_id"] == 1 and stats["arms"][0]["key"] == "A" and stats["recipients"] == 0
    assert "cancelled" in _rapport(url, "campaigns", "cancel", "1", "--workspace", tenant.slug)

    failed = CliRunner().invoke(app, ["campaigns", "resume", "1", "--workspace", tenant.slug],
                                env={"RAPPORT_DATABASE_URL": url})  # fmt: skip
    assert failed.exit_code == 1 and "cannot resume a cancelled campaign" in failed.output
    spec.write_text(json.dumps({**body, "name": "Bad", "variants": []}))
    bad = CliRunner().invoke(app, ["campaigns", "create", str(spec), "--workspace", tenant.slug],
                             env={"RAPPORT_DATABASE_URL": url})  # fmt: skip
    assert bad.exit_code == 1 and "variants" in bad.output
