"""R15 end to end: the double opt-in confirmation email reaches a real SMTP sink, and it is the only
email a pending address gets until the person confirms through the link it carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from rapport.app import build_worker
from rapport.channels.email import SmtpChannel, SmtpConfig
from rapport.config import Settings
from rapport.consent import tasks
from rapport.messaging import service as messaging_service
from rapport.messaging.delivery import channels_of
from rapport.models import Job, Message, Workspace
from rapport.runtime import Runtime
from rapport.worker.queue import DONE
from rapport.worker.runner import JobContext, Worker
from tests.consent.conftest import make_profile
from tests.support.smtp_sink import SmtpSink
from tests.support.tenants import Tenant

CONFIRM_LINK = re.compile(r"https://[^\s\"<>]+/c/[A-Za-z0-9._-]+")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        secret_key="test-secret-key-0123456789",
        run_worker_in_process=False,
        spool_dir=str(tmp_path / "spool"),
        email_from="shop@hartley.example",
        base_url="https://rapport.example",
    )


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


@pytest.fixture
def worker(runtime: Runtime, sink: SmtpSink) -> Iterator[Worker]:
    """The real worker (jobs + Deliverer tick) with email going to the sink."""
    channel = SmtpChannel(
        SmtpConfig(host=sink.host, port=sink.port, pool_size=1), id_domain="hartley.example"
    )
    built = build_worker(runtime)
    channels_of(runtime)["email"] = channel
    yield built
    channel.close()


def _marketing(runtime: Runtime, tenant: Tenant, profile_id: int, key: str) -> None:
    with runtime.sessions() as db:
        messaging_service.enqueue(
            db,
            workspace_id=tenant.workspace_id,
            profile_id=profile_id,
            channel="email",
            content={"subject": "Winter sale", "html": "<p>Sale!</p>"},
            dedupe_key=key,
            now=runtime.clock.now(),
        )
        db.commit()


def _status(runtime: Runtime, key: str) -> tuple[str, str | None]:
    with runtime.read_sessions() as db:
        row = db.execute(select(Message.status, Message.status_reason).where(Message.dedupe_key == key)).one()
    return str(row[0]), row[1]


def test_only_the_confirmation_goes_until_the_link_is_confirmed(
    runtime: Runtime, tenant: Tenant, client: TestClient, sink: SmtpSink, worker: Worker
) -> None:
    profile_id = make_profile(runtime, tenant, "ann", "ann@example.com")
    with runtime.sessions() as db:  # a zero cap: marketing could never go, the confirmation is never capped
        db.execute(
            update(Workspace)
            .where(Workspace.id == tenant.workspace_id)
            .values(name="Hartley & Finch", settings={"caps": {"email": {"day": 0}}})
        )
        db.commit()
    started = client.post(
        f"/api/v1/profiles/{profile_id}/consent/double-opt-in",
        json={"source": "signup_form", "wording": "Send me offers"},
        headers=tenant.secret_headers,
    )
    assert started.status_code == 202, started.text
    _marketing(runtime, tenant, profile_id, "early-offer")
    worker.drain()
    worker.drain()  # the job queued the email; the Deliverer tick sends it

    [received] = sink.wait_for(1)
    assert received.rcpt_tos == ["ann@example.com"]
    mail = received.parsed()
    assert mail["Subject"] == "Please confirm your subscription to Hartley & Finch"
    assert mail["List-Unsubscribe"] is None  # a confirmation is not marketing
    text_part = mail.get_body(preferencelist=("plain",))
    html_part = mail.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    [link] = set(CONFIRM_LINK.findall(text_part.get_content()))
    assert link in html_part.get_content()
    assert _status(runtime, "early-offer") == ("skipped", "email opt-in not confirmed yet")

    # confirming through the page (a GET shows the button, the POST confirms)
    path = link.removeprefix("https://rapport.example")
    page = client.get(path)
    assert page.status_code == 200
    form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
    assert form_token is not None
    assert client.post(path, data={"form_token": form_token.group(1)}).status_code == 200
    with runtime.sessions() as db:
        db.execute(update(Workspace).where(Workspace.id == tenant.workspace_id).values(settings={}))
        db.commit()
    _marketing(runtime, tenant, profile_id, "after-confirmation")
    worker.drain()
    assert len(sink.wait_for(2)) == 2
    assert _status(runtime, "after-confirmation")[0] == "sent"
    with runtime.read_sessions() as db:
        kinds = db.scalars(select(Message.kind).order_by(Message.id)).all()
    assert kinds == ["marketing", "confirmation", "marketing"]


def test_the_job_queues_one_email_and_skips_when_no_longer_pending(
    runtime: Runtime, tenant: Tenant, client: TestClient, sink: SmtpSink, worker: Worker
) -> None:
    ann = make_profile(runtime, tenant, "ann", "ann@example.com")
    bob = make_profile(runtime, tenant, "bob", "bob@example.com")
    for pid in (ann, bob):
        answer = client.post(
            f"/api/v1/profiles/{pid}/consent/double-opt-in", json={}, headers=tenant.secret_headers
        )
        assert answer.status_code == 202, answer.text
    # bob withdraws before the job runs: his confirmation is not sent
    answer = client.post(
        f"/api/v1/profiles/{bob}/consent",
        json={"channel": "email", "action": "withdrawn", "source": "test"},
        headers=tenant.secret_headers,
    )
    assert answer.status_code == 200, answer.text
    worker.drain()
    with runtime.sessions() as db:  # the same job run again (a retry after a crash) queues nothing new
        [job] = [
            j
            for j in db.scalars(select(Job).where(Job.kind == tasks.JOB_KIND))
            if j.payload["profile_id"] == ann
        ]
        assert job.status == DONE, job.status
        tasks.run_send_confirmation(JobContext(job=job, db=db, runtime=runtime))
        db.commit()
    worker.drain()
    received = sink.wait_for(1)
    assert [m.rcpt_tos for m in received] == [["ann@example.com"]]
    with runtime.read_sessions() as db:
        rows = db.execute(select(Message.profile_id, Message.kind)).all()
        results = {
            j.payload["profile_id"]: j.result
            for j in db.scalars(select(Job).where(Job.kind == tasks.JOB_KIND))
        }
    assert rows == [(ann, "confirmation")]
    assert "not pending" in str(results[bob])
