"""The scores service on both databases: exact RFM on hand-made data, a synthetic fit, failures, the job."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from rapport.app import build_worker, wire_runtime
from rapport.collect.importer import import_event_rows, import_profile_rows
from rapport.content.rendering import TemplateDraft, TemplateRenderer
from rapport.kit.clock import FakeClock
from rapport.models import Event, Identity, Job, Profile, ProfileScores, ScoreRun, SegmentMember
from rapport.process import score_repository, scores_service, tasks
from rapport.profiles import service as profiles_service
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate
from rapport.synth.generator import DEFAULT_REFERENCE_DATE, SynthSpec, iter_chunks
from tests.support.tenants import Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    """A clock fixed at NOW."""
    return FakeClock(NOW)


def _order(user: str, days_ago: int, total: float) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "order_completed",
        "userId": user,
        "messageId": f"{user}-{days_ago}-{total}",
        "timestamp": (NOW - timedelta(days=days_ago)).isoformat(),
        "properties": {"total": total},
    }


def _computed(runtime: Runtime, tenant: Tenant, user: str) -> dict[str, Any]:
    with runtime.read_sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(
                Identity.workspace_id == tenant.workspace_id, Identity.value == user
            )
        )
        held = db.get(ProfileScores, pid)
        assert held is not None
        return dict(held.scores)


def test_rfm_exact_and_failed_clv_keeps_previous_values(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": "never"}])
    rows = [_order("u1", 1, 100), _order("u1", 10, 100), _order("u1", 20, 100)]
    rows += [
        _order("u2", 30, 20),
        _order("u3", 200, 5),
        _order("u4", 100, 50),
        _order("u4", 90, 50),
        _order("u5", 5, 10),
    ]
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    with runtime.sessions() as db:  # a value from an earlier successful run
        pid = db.scalar(
            select(Identity.profile_id).where(Identity.value == "u1", Identity.workspace_id == ws)
        )
        db.add(ProfileScores(profile_id=pid, workspace_id=ws, scores={"clv_12m": 123.0}))
        db.commit()
    run_ids = scores_service.run_scores(runtime, ws, ["rfm", "clv"], NOW)
    with runtime.read_sessions() as db:
        runs = {r.kind: r for r in db.scalars(select(ScoreRun).where(ScoreRun.id.in_(run_ids)))}
    assert runs["rfm"].status == "done" and runs["rfm"].profiles_scored == 6
    # R: days since last 1, 30, 200, 90, 5 → u1 best; F: 3, 1, 1, 2, 1; M: 300, 20, 5, 100, 10
    u1, u3, never = (_computed(runtime, tenant, u) for u in ("u1", "u3", "never"))
    assert (u1["rfm_r"], u1["rfm_f"], u1["rfm_m"], u1["rfm_segment"]) == (5, 5, 5, "champions")
    assert (u3["rfm_r"], u3["rfm_f"], u3["rfm_m"], u3["rfm_segment"]) == (1, 1, 1, "lost")
    assert (never["rfm_r"], never["rfm_segment"]) == (0, "never_purchased")
    assert u1["loyalty_level"] in ("bronze", "silver", "gold", "platinum") and isinstance(
        u1["loyalty_score"], int
    )
    # five customers cannot support a BG/NBD fit: the run fails with its reason, old values stay
    clv_run = runs["clv"]
    if clv_run.status == "failed":
        assert clv_run.error
        assert u1["clv_12m"] == 123.0
    else:  # the optimiser may converge on tiny data; then values are fresh and complete
        assert u1["clv_12m"] != 123.0 and "p_alive" in u1


@pytest.fixture
def synthetic(runtime: Runtime, tenant: Tenant, clock: FakeClock) -> int:
    """A 250-customer synthetic workspace, the clock at the generator's reference date."""
    wire_runtime(runtime)
    clock.set(DEFAULT_REFERENCE_DATE)
    for chunk in iter_chunks(SynthSpec(profiles=250, seed=3)):
        import_profile_rows(runtime, workspace_id=tenant.workspace_id, rows=chunk.profiles)
        import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=chunk.events)
    return tenant.workspace_id


def test_synthetic_workspace_all_scores(runtime: Runtime, synthetic: int) -> None:
    now = DEFAULT_REFERENCE_DATE
    run_ids = scores_service.run_scores(runtime, synthetic, None, now)
    with runtime.read_sessions() as db:
        runs = list(db.scalars(select(ScoreRun).where(ScoreRun.id.in_(run_ids))))
        profiles = list(
            db.scalars(
                select(Profile).where(Profile.workspace_id == synthetic, Profile.merged_into_id.is_(None))
            )
        )
        held = score_repository.scores_of(db, synthetic, [p.id for p in profiles])
    by_kind = {r.kind: r for r in runs}
    assert by_kind["rfm"].status == "done"
    assert by_kind["clv"].status == "done", by_kind["clv"].error
    assert set(by_kind["clv"].params["bgnbd"]) >= {"r", "alpha", "a", "b"}
    prop = by_kind["propensity"]
    assert prop.status == "done", prop.error
    assert prop.model is not None and "auc" in prop.metrics
    assert all(not set(p.computed) & {"rfm_segment", "p_alive"} for p in profiles)  # scores have a table
    buyers = [held[p.id] for p in profiles if (p.computed.get("total_orders") or 0) > 0]
    assert buyers and all(s["rfm_segment"] != "never_purchased" for s in buyers)
    for s in buyers:
        assert 0.0 <= s["p_alive"] <= 1.0
        assert s["churn_band"] in ("low", "medium", "high", "critical")
        assert s["value_tier"] in ("high", "medium", "low")
        assert s["clv_12m"] >= 0
    scored = [pid for pid, s in held.items() if "propensity_purchase_30d" in s]
    if prop.usable:
        assert scored
    else:  # a model no better than chance is stored and flagged, and its scores are not written
        assert not scored and prop.metrics["reasons"]


def test_nightly_job_runs_and_requeues(runtime: Runtime, tenant: Tenant, clock: FakeClock) -> None:
    worker = build_worker(runtime)
    import_event_rows(runtime, workspace_id=tenant.workspace_id, rows=[_order("u1", 3, 10)])
    with runtime.sessions() as db:
        tasks.enqueue_nightly(db, workspace_id=tenant.workspace_id, now=NOW)
        assert tasks.enqueue_nightly(db, workspace_id=tenant.workspace_id, now=NOW) is None  # deduped by date
        db.commit()
    clock.set(tasks.next_night(NOW) + timedelta(minutes=1))
    worker.drain()
    with runtime.read_sessions() as db:
        jobs = list(db.scalars(select(Job).where(Job.kind == tasks.SCORES_JOB).order_by(Job.id)))
        runs = list(db.scalars(select(ScoreRun).where(ScoreRun.workspace_id == tenant.workspace_id)))
    assert jobs[0].status == "done"
    assert any(j.status == "queued" and j.run_at > clock.now() for j in jobs[1:])
    assert {r.kind for r in runs} >= {"rfm", "clv", "propensity"}


def test_clv_without_purchases_fails_and_keeps_values(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    import_profile_rows(runtime, workspace_id=ws, rows=[{"user_id": "p1"}])
    with runtime.sessions() as db:
        pid = db.scalar(
            select(Identity.profile_id).where(Identity.value == "p1", Identity.workspace_id == ws)
        )
        db.add(ProfileScores(profile_id=pid, workspace_id=ws, scores={"clv_12m": 9.5, "value_tier": "high"}))
        db.commit()
    (run_id,) = scores_service.run_scores(runtime, ws, ["clv"], NOW)
    with runtime.read_sessions() as db:
        run = db.get(ScoreRun, run_id)
        assert run is not None
        assert (run.status, run.usable) == ("failed", False)
        assert run.error and "no purchases" in run.error
    kept = _computed(runtime, tenant, "p1")
    assert (kept["clv_12m"], kept["value_tier"]) == (9.5, "high")


def test_unusable_propensity_model_is_stored_but_not_applied(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    ws = tenant.workspace_id
    rows = [_order(f"u{i}", 10 + 37 * i, 10.0) for i in range(4)]  # far too few positives for a holdout
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    (run_id,) = scores_service.run_scores(runtime, ws, ["propensity"], NOW)
    with runtime.read_sessions() as db:
        run = db.get(ScoreRun, run_id)
        assert run is not None
        held = list(db.scalars(select(ProfileScores.scores).where(ProfileScores.workspace_id == ws)))
    if run.status == "done":
        assert run.usable is False and run.metrics["reasons"] and run.model is not None
    else:  # so little data that training itself refuses; recorded with its reason
        assert run.status == "failed" and run.error
    assert all("propensity_purchase_30d" not in s for s in held)


def test_scores_reach_segments_profiles_and_templates(runtime: Runtime, tenant: Tenant) -> None:
    """Scores live in their own table; segments, the profile read and templates still see them by name."""
    wire_runtime(runtime)
    ws = tenant.workspace_id
    rows = [_order("u1", 1, 100), _order("u1", 10, 100), _order("u1", 20, 100), _order("u3", 200, 5)]
    rows += [_order("u2", 30, 20), _order("u4", 100, 50), _order("u5", 5, 10)]
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    scores_service.run_scores(runtime, ws, ["rfm"], NOW)
    with runtime.read_sessions() as db:
        u1 = db.scalar(select(Identity.profile_id).where(Identity.value == "u1", Identity.workspace_id == ws))
        assert u1 is not None
        found = segments_service.preview(
            db, workspace_id=ws, text='rfm_segment = "champions" and rfm_r >= 5', ast=None, now=NOW
        )
        assert (found.count, [s.id for s in found.sample]) == (1, [u1])
        missing = segments_service.preview(
            db, workspace_id=ws, text="rfm_segment is not set", ast=None, now=NOW
        )
        assert missing.count == 0  # every profile has an RFM segment (never_purchased included)
        read = profiles_service.read_profile(db, workspace_id=ws, profile_id=u1, now=NOW)
        assert (read.computed["rfm_segment"], read.computed["total_orders"]) == ("champions", 3)
        draft = TemplateDraft(
            channel="sms",
            content={"body": "{{ scores.rfm_segment }}/{{ computed.rfm_f }} {{ blocks.vip }}"},
            blocks=[
                {
                    "name": "vip",
                    "variants": [{"condition": 'rfm_segment = "champions"', "source": "VIP", "name": "vip"}],
                    "default": "-",
                }
            ],
        )
        renderer = TemplateRenderer(db, workspace_id=ws, draft=draft, now=NOW)
        profile = db.get(Profile, u1)
        assert profile is not None
        single = renderer.render_profile(profile).raise_for_errors()
        renderer.prefetch([profile])
        batched = renderer.render_profile(profile).raise_for_errors()
    assert single.parts["body"] == batched.parts["body"] == "champions/5 VIP"


def test_segments_on_scores_follow_a_score_run(runtime: Runtime, tenant: Tenant) -> None:
    """A score run changes scores in bulk, not through events: its job refreshes the segments on scores at
    once (the worker's periodic full refresh is not due), with entries recorded on the profiles."""
    worker = build_worker(runtime)
    ws = tenant.workspace_id
    rows = [_order("u1", 1, 100), _order("u1", 10, 100), _order("u1", 20, 100), _order("u3", 200, 5)]
    rows += [_order("u2", 30, 20), _order("u4", 100, 50), _order("u5", 5, 10)]
    import_event_rows(runtime, workspace_id=ws, rows=rows)
    worker.drain()
    with runtime.sessions() as db:
        champions = segments_service.create_segment(
            db,
            workspace_id=ws,
            data=SegmentCreate(name="Champions", text='rfm_segment = "champions"'),
            actor="test",
            now=NOW,
        )
        db.commit()
        u1 = db.scalar(select(Identity.profile_id).where(Identity.value == "u1", Identity.workspace_id == ws))
    assert champions.member_count == 0
    scores_service.run_scores(runtime, ws, ["rfm"], NOW)
    worker.drain()
    with runtime.read_sessions() as db:
        members = set(
            db.scalars(select(SegmentMember.profile_id).where(SegmentMember.segment_id == champions.id))
        )
        entered = db.scalars(
            select(Event.properties).where(Event.profile_id == u1, Event.event == "segment_entered")
        ).all()
    assert members == {u1}
    assert [e["segment_name"] for e in entered] == ["Champions"]
