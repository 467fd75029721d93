"""Messaging fixtures: a real SMTP sink, the email channel pointed at it, consenting profiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from rapport.app import wire_runtime
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.collect.importer import import_profile_rows
from rapport.config import Settings
from rapport.consent import service as consent_service
from rapport.messaging.delivery import Deliverer, channels_of
from rapport.models import Identity
from rapport.runtime import Runtime
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        db_pool_size=8,
        spool_dir=str(tmp_path / "spool"),
        email_from="shop@hartley.example",
    )


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def email_channel(runtime: Runtime, sink: SmtpSink) -> Iterator[SmtpChannel]:
    channel = SmtpChannel(
        SmtpConfig(host=sink.host, port=sink.port, pool_size=2), id_domain="hartley.example"
    )
    wire_runtime(runtime)
    channels_of(runtime)["email"] = channel
    yield channel
    channel.close()


@pytest.fixture
def deliverer(runtime: Runtime, email_channel: SmtpChannel) -> Iterator[Deliverer]:
    d = Deliverer(runtime, worker_id="test-deliverer", batch_size=25)
    yield d
    d.close()


def make_people(
    runtime: Runtime,
    tenant: Tenant,
    count: int,
    *,
    consent: str | None = "email",
    extra: dict[str, object] | None = None,
) -> list[int]:
    """Import ``count`` people (p0…) and grant email/sms consent; return their profile ids in order."""
    wire_runtime(runtime)
    rows = [
        {
            "user_id": f"p{i}",
            "email": f"person{i}@example.com",
            "phone": f"+447911{i:06d}",
            "first_name": f"Person{i}",
            **(extra or {}),
        }
        for i in range(count)
    ]
    report = import_profile_rows(runtime, workspace_id=tenant.workspace_id, rows=rows)
    assert report.imported == count, report.as_dict()
    with runtime.sessions() as db:
        found = dict(
            db.execute(
                select(Identity.value, Identity.profile_id).where(
                    Identity.workspace_id == tenant.workspace_id, Identity.kind == "user_id"
                )
            ).all()
        )
        ids = [int(found[f"p{i}"]) for i in range(count)]
        if consent:
            for pid in ids:
                for channel in consent.split(","):
                    consent_service.record(
                        db,
                        workspace_id=tenant.workspace_id,
                        profile_id=pid,
                        now=runtime.clock.now(),
                        statement=consent_service.Statement(channel=channel, action="granted", source="test"),
                    )
        db.commit()
    return ids
