"""The demo's marketing set-up: segments with members, templates, live triggers and a drafted A/B broadcast
whose audience can be estimated; running it twice adds nothing."""

from __future__ import annotations

from rapport.app import wire_runtime
from rapport.campaigns import service as campaigns_service
from rapport.models import Workspace
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.synth.demo import fill_workspace
from rapport.synth.marketing import SEGMENTS, seed_marketing
from tests.support.tenants import Tenant


def test_the_demo_gets_segments_templates_and_campaigns(runtime: Runtime, tenant: Tenant) -> None:
    wire_runtime(runtime)
    fill_workspace(runtime, workspace_id=tenant.workspace_id, customers=120, seed=3, show_progress=False)
    report = seed_marketing(runtime, workspace_id=tenant.workspace_id)
    assert (report.segments, report.templates, report.campaigns) == (5, 5, 4)
    with runtime.read_sessions() as db:
        segments = {s.name: s for s in segments_service.list_segments(db, workspace_id=tenant.workspace_id)}
        assert set(segments) == set(SEGMENTS)
        assert segments["Recent buyers"].member_count > 0
        campaigns = {
            c.name: c for c in campaigns_service.list_campaigns(db, workspace_id=tenant.workspace_id)
        }
        assert {n: c.status for n, c in campaigns.items()} == {
            "Welcome series": "active",
            "Birthday treat": "active",
            "Renewal reminder": "active",
            "Winter sale": "draft",
        }
        workspace = db.get(Workspace, tenant.workspace_id)
        assert workspace is not None
        estimate = campaigns_service.estimate_audience(
            db, workspace=workspace, campaign=campaigns["Winter sale"], now=runtime.clock.now()
        )
        assert (
            0
            < estimate.total
            <= segments["Recent buyers"].member_count + segments["Email engaged"].member_count
        )
        assert (
            estimate.reachable + estimate.no_consent + estimate.no_address + estimate.suppressed
            == estimate.total
        )
    again = seed_marketing(runtime, workspace_id=tenant.workspace_id)
    assert again.segments == 5
    with runtime.read_sessions() as db:
        assert len(campaigns_service.list_campaigns(db, workspace_id=tenant.workspace_id)) == 4
