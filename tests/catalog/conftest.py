"""Catalogue tests log in through the UI: hash passwords at argon2's lowest cost (the real code path)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from rapport.accounts import passwords


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost parameters travel inside each hash, so verification is unchanged."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
