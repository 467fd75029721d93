"""A garbage collection that happens during a message's render is not charged to its template's budget."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rapport.messaging import render
from rapport.messaging.render import RecipientFacts, RenderError, build
from rapport.messaging.repository import ClaimedMessage
from rapport.personalize import RenderLimits, TemplateEngine
from rapport.personalize.limits import thread_cpu_seconds

NOW = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
CONTENT = {
    "subject": "Hi {{ profile.first_name }}",
    "html": "<p>{% for i in (1..20) %}{{ profile.first_name }} {{ i }} {% endfor %}</p>",
}


def _message() -> ClaimedMessage:
    return ClaimedMessage(
        id=1,
        workspace_id=1,
        message_id="m-gc-1",
        profile_id=1,
        campaign_id=None,
        variant=None,
        channel="email",
        topic="",
        kind="marketing",
        priority=100,
        run_at=NOW,
        attempts=1,
        max_attempts=6,
        last_error=None,
        content=CONTENT,
    )


def _build(engine: TemplateEngine) -> Any:
    return build(
        engine,
        _message(),
        RecipientFacts(profile_id=1, address="ada@example.com", traits={"first_name": "Ada"}, timezone="UTC"),
        now=NOW,
        links={"unsubscribe": "https://rapport.example/u/t"},
        defaults={"from_address": "news@example.com", "from_name": "News"},
    )


@pytest.fixture
def slow_collection() -> Iterator[list[int]]:
    """The first collection during a render burns 150 ms of this thread's CPU (as a full collection of a
    big heap does)."""
    burned: list[int] = []

    def burn(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and not burned and render._rendering.budget is not None:
            burned.append(1)
            end = thread_cpu_seconds() + 0.15
            while thread_cpu_seconds() < end:
                pass

    thresholds = gc.get_threshold()
    render._hook_collections()
    gc.callbacks.append(burn)  # after the render's own hook: its "start" runs first, its "stop" last
    gc.set_threshold(1)  # collect on the render's first allocations
    try:
        yield burned
    finally:
        gc.set_threshold(*thresholds)
        gc.callbacks.remove(burn)


def test_a_collection_in_a_render_is_given_back_to_the_budget(slow_collection: list[int]) -> None:
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=50))
    out = _build(engine)
    assert slow_collection == [1]
    assert out.email is not None and out.email.subject == "Hi Ada"
    assert out.email.html is not None and "Ada 20" in out.email.html


def test_without_the_credit_the_same_collection_fails_the_render(slow_collection: list[int]) -> None:
    engine = TemplateEngine(limits=RenderLimits(max_render_ms=50))
    gc.callbacks.remove(render._credit_collections)  # the interpreter holds the list itself: edit it
    try:
        with pytest.raises(RenderError):
            _build(engine)
    finally:
        gc.callbacks.insert(0, render._credit_collections)
    assert slow_collection == [1]
