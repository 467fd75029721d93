"""Helpers for driving the UI's forms with a TestClient or an httpx client."""

from __future__ import annotations

import re
from typing import Protocol


class _Response(Protocol):
    status_code: int
    text: str


class _Client(Protocol):
    def get(self, url: str, **kwargs: object) -> _Response: ...

    def post(self, url: str, **kwargs: object) -> _Response: ...


def hidden_field(html: str, name: str) -> str:
    """Return the value of a hidden input of the page."""
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', html)
    assert found, f"no hidden field {name!r} on the page"
    return found.group(1)


def csrf_of(html: str) -> str:
    """Return the session's CSRF token from the page's meta tag."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, "no csrf-token meta tag on the page"
    return found.group(1)


def post_login(client: _Client, email: str, password: str, *, next_path: str = "/") -> _Response:
    """Load the login form and post it (with its double-submit token)."""
    form = client.get("/login")
    token = hidden_field(form.text, "login_token")
    return client.post(
        "/login",
        data={"email": email, "password": password, "login_token": token, "next": next_path},
        follow_redirects=False,
    )


def ui_login(client: _Client, email: str, password: str) -> str:
    """Log in and return the session's CSRF token."""
    answer = post_login(client, email, password)
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)
