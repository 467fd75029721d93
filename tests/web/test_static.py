"""Vendored front-end files: pinned, checksummed, served from our own origin; flash cookies are signed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fastapi.testclient import TestClient

from rapport.web.rendering import FLASH_COOKIE, STATIC_DIR
from tests.support.tenants import Tenant
from tests.web.ui import ui_login

ROOT = Path(__file__).resolve().parents[2]


def _versions() -> dict[str, tuple[str, str]]:
    lines = (STATIC_DIR / "vendor" / "VERSIONS.txt").read_text().splitlines()
    rows = [line.split() for line in lines if line and not line.startswith("#")]
    return {name: (package, digest) for name, package, digest in rows}


def test_vendored_files_match_their_recorded_versions_and_checksums() -> None:
    versions = _versions()
    assert set(versions) == {"htmx.min.js", "chart.umd.min.js"}
    pins = json.loads((ROOT / "web" / "package.json").read_text())["dependencies"]
    lock = json.loads((ROOT / "web" / "package-lock.json").read_text())["packages"]
    for name, (package, digest) in versions.items():
        assert hashlib.sha256((STATIC_DIR / "vendor" / name).read_bytes()).hexdigest() == digest, name
        npm_name, version = package.rsplit("@", 1)
        assert pins[npm_name] == version  # an exact pin, no range
        assert lock[f"node_modules/{npm_name}"]["version"] == version
    assert versions["htmx.min.js"][0].startswith("htmx.org@2.")
    assert versions["chart.umd.min.js"][0].startswith("chart.js@4.")


def test_static_files_are_served_and_pages_load_only_local_scripts(
    client: TestClient, tenant: Tenant
) -> None:
    for path in [
        "/static/vendor/htmx.min.js",
        "/static/vendor/chart.umd.min.js",
        "/static/app.js",
        "/static/app.css",
    ]:
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert len(answer.content) > 1000
    ui_login(client, tenant.admin_email, tenant.password)
    page = client.get("/").text
    assert '<script src="/static/vendor/htmx.min.js" defer></script>' in page
    assert '<script src="/static/vendor/chart.umd.min.js" defer></script>' in page
    assert '"includeIndicatorStyles": false' in page  # htmx must not inject a <style> the CSP would block


def test_a_forged_flash_cookie_is_ignored(client: TestClient, tenant: Tenant) -> None:
    ui_login(client, tenant.admin_email, tenant.password)
    client.cookies.set(FLASH_COOKIE, '[["error","<b>You have been hacked</b>"]]')
    page = client.get("/")
    assert page.status_code == 200
    assert "You have been hacked" not in page.text
