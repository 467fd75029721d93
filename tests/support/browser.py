"""Debian's chromium driven by Playwright, for browser tests against a real server on 127.0.0.1.

Chromium is the system package (``/usr/bin/chromium``; never ``playwright install``), started so that it
resolves nothing but 127.0.0.1 and phones nowhere. Every page records console errors and page errors;
:meth:`PageWatch.assert_clean` fails a test that produced any.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Error, Page

CHROMIUM = os.environ.get("RAPPORT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class PageWatch:
    """Collects a page's console errors and uncaught exceptions."""

    page: Page
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def attach(self) -> PageWatch:
        """Start listening on the page."""
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)
        return self

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(f"{message.text} @ {message.location.get('url', '')}")

    def _on_page_error(self, error: Error) -> None:
        self.page_errors.append(str(error))

    def assert_clean(self) -> None:
        """Fail when the page logged a console error or threw."""
        problems = self.console_errors + self.page_errors
        assert not problems, "JavaScript errors on the page:\n" + "\n".join(problems)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    path = ARTIFACTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def launch_options() -> dict[str, Any]:
    """Return the keyword arguments for ``chromium.launch``."""
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}
