"""``rapport templates validate|preview`` in-process: positions of errors, a JSON file, a rendered preview."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rapport.cli import app
from rapport.content import service
from rapport.content.schemas import TemplateCreate
from rapport.runtime import Runtime
from tests.content.data import NOW, add_profile
from tests.support.tenants import Tenant


def _run(*args: str, database_url: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"RAPPORT_DATABASE_URL": database_url, "COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_validate_a_file_and_preview_a_saved_template(
    runtime: Runtime, tenant: Tenant, db_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"channel": "sms", "content": {"body": "Hi\n{{ first_name | nope }}"}}))
    code, out, err = _run("templates", "validate", str(bad), database_url=db_url)
    assert code == 1 and "error body:2:" in err and "unknown filter 'nope'" in err and "1 error(s)" in out

    pid = add_profile(runtime, tenant.workspace_id, traits={"phone": "+447700900005", "first_name": "Ada"})
    with runtime.sessions() as db:
        service.create_template(
            db,
            workspace_id=tenant.workspace_id,
            data=TemplateCreate(name="Hello text", channel="sms", content={"body": "Hi {{ first_name }}"}),
            actor="t",
            now=NOW,
        )
        db.commit()
    code, out, _err = _run("templates", "validate", "Hello text", database_url=db_url)
    assert code == 0 and "0 error(s), 0 warning(s)" in out
    code, out, _err = _run(
        "templates", "preview", "Hello text", "--profile-id", str(pid), database_url=db_url
    )
    assert code == 0
    [item] = json.loads(out)
    assert item["parts"] == {"body": "Hi Ada"} and item["sms"]["segments"] == 1
