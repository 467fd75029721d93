"""Fixtures for the channel tests: a real SMTP sink on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.smtp_sink import SmtpSink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A well-behaved SMTP sink; tests that need faults build their own ``SmtpSink``."""
    with SmtpSink() as sink:
        yield sink
