"""The demo fill: synthetic customers loaded through the importer, catalogue in the workspace settings."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select

from rapport.models import Event, Identity, Workspace
from rapport.models.consent import Subscription
from rapport.runtime import Runtime
from rapport.synth.catalogue import STORES
from rapport.synth.demo import demo_reference_date, fill_workspace
from rapport.synth.generator import SynthSpec, iter_events, iter_profiles
from tests.support.tenants import Tenant

REF = datetime(2026, 6, 1, tzinfo=UTC)


def _event_keys(runtime: Runtime, workspace_id: int) -> set[tuple[str, str | None, datetime]]:
    with runtime.sessions() as db:
        rows = db.execute(
            select(Event.message_id, Event.event, Event.timestamp).where(Event.workspace_id == workspace_id)
        )
        return {(m, e, t) for m, e, t in rows}


def test_fill_loads_every_customer_and_event_deterministically(
    runtime: Runtime, tenant: Tenant, other_tenant: Tenant
) -> None:
    report = fill_workspace(
        runtime,
        workspace_id=tenant.workspace_id,
        customers=60,
        seed=3,
        reference_date=REF,
        show_progress=False,
    )
    expected = list(iter_events(SynthSpec(profiles=60, seed=3, reference_date=REF)))
    assert report.profiles == 60 and report.events == len(expected) and report.failed == 0
    with runtime.sessions() as db:
        users = db.scalar(
            select(func.count())
            .select_from(Identity)
            .where(Identity.workspace_id == tenant.workspace_id, Identity.kind == "user_id")
        )
        assert users == 60
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        assert [s["id"] for s in workspace.settings["stores"]] == [s.id for s in STORES]
        assert workspace.settings["products"]
        states = Counter(
            (channel, state)
            for channel, state in db.execute(
                select(Subscription.channel, Subscription.state).where(
                    Subscription.workspace_id == tenant.workspace_id
                )
            )
        )
    profiles = list(iter_profiles(SynthSpec(profiles=60, seed=3, reference_date=REF)))
    expected_states = Counter(
        (channel, p[f"{channel}_consent"])
        for p in profiles
        for channel in ("email", "sms")
        if p[f"{channel}_consent"] != "never_asked"
    )
    assert states == expected_states and report.consents == sum(expected_states.values())
    keys = _event_keys(runtime, tenant.workspace_id)
    assert {k[0] for k in keys} == {e["messageId"] for e in expected}
    fill_workspace(
        runtime, workspace_id=other_tenant.workspace_id, customers=60, seed=3, reference_date=REF,
        show_progress=False,
    )  # fmt: skip
    assert _event_keys(runtime, other_tenant.workspace_id) == keys


def test_demo_activity_ends_today() -> None:
    assert demo_reference_date(datetime(2026, 11, 23, 1, 5, tzinfo=UTC)) == datetime(2026, 11, 24, tzinfo=UTC)
