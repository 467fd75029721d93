"""The outbox's bulk statements never cut a value silently: on PostgreSQL a value longer than its column is
refused, as a plain INSERT or UPDATE refuses it (SQLite keeps no lengths); a provider's overlong id is
shortened where it is received, explicitly, so recording a message that went out cannot fail on it."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from rapport.channels.base import PROVIDER_ID_MAX, SendResult, SendStatus
from rapport.messaging import repository as repo
from rapport.messaging import service as messaging_service
from rapport.messaging.service import OutboxRow
from rapport.models import Message
from rapport.runtime import Runtime
from tests.messaging.conftest import make_people
from tests.support.tenants import Tenant

CONTENT = {"subject": "Hi", "html": "<p>Hi</p>"}


def test_a_provider_id_longer_than_its_column_keeps_its_first_characters() -> None:
    long = "q" * (PROVIDER_ID_MAX + 50)
    assert SendResult("m1", SendStatus.SENT, provider_id=long).provider_id == long[:PROVIDER_ID_MAX]
    assert SendResult("m1", SendStatus.SENT, provider_id="abc").provider_id == "abc"
    assert SendResult("m1", SendStatus.SENT).provider_id is None


def test_bulk_statements_refuse_an_overlong_value_instead_of_cutting_it(
    runtime: Runtime, tenant: Tenant, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    person = make_people(runtime, tenant, 1, consent=None)[0]
    long_key = "k" * 250  # messages.dedupe_key is VARCHAR(200)
    with runtime.sessions() as db, pytest.raises(DataError, match="too long"):
        messaging_service.enqueue_many(
            db,
            workspace_id=tenant.workspace_id,
            rows=[OutboxRow(person, "email", CONTENT, long_key)],
            now=runtime.clock.now(),
        )
    with runtime.sessions() as db:
        messaging_service.enqueue_many(
            db,
            workspace_id=tenant.workspace_id,
            rows=[OutboxRow(person, "email", CONTENT, "k" * 200)],
            now=runtime.clock.now(),
        )
        db.commit()
        message = db.scalars(select(Message)).one()
        assert message.dedupe_key == "k" * 200
    with runtime.sessions() as db, pytest.raises(DataError, match="too long"):
        repo.update_messages(db, [{"id": message.id, "status_reason": "r" * 501}])  # VARCHAR(500)
    with runtime.sessions() as db:
        repo.update_messages(db, [{"id": message.id, "status_reason": "r" * 500}])
        db.commit()
        assert db.get(Message, message.id).status_reason == "r" * 500  # type: ignore[union-attr]
