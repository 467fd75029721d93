"""The demo's marketing set-up: segments a retailer would keep, message templates, and campaigns (a live
welcome, a birthday greeting, a contract renewal reminder, and a winter-sale broadcast drafted as an A/B
test with a control group), all made through the same services the API and the UI use."""

from __future__ import annotations

from dataclasses import dataclass

from rapport.campaigns import service as campaigns_service
from rapport.campaigns.schemas import CampaignCreate
from rapport.content import service as content_service
from rapport.content.schemas import TemplateCreate
from rapport.kit.pagination import Page
from rapport.runtime import Runtime
from rapport.segments import service as segments_service
from rapport.segments.schemas import SegmentCreate

SEGMENTS = {
    "Recent buyers": "purchased at least 1 time in last 90 days",
    "Lapsed customers": "purchased at least 1 time and not purchased in last 180 days",
    "Big spenders": "total_spend > 500",
    "Leeds shoppers": 'city = "Leeds"',
    "Email engaged": "email.opened in last 60 days",
}

_FOOTER = '<p style="font-size:12px;color:#666">Hartley &amp; Finch · <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
TEMPLATES: dict[str, tuple[str, dict[str, str]]] = {
    "Welcome": ("email", {
        "subject": "Welcome to Hartley & Finch, {{ first_name | default: 'friend' }}",
        "preheader": "10% off your first order",
        "html": "<h1>Welcome, {{ first_name | default: 'friend' }}!</h1><p>Here is 10% off your first order: "
                "<strong>HELLO10</strong>.</p>" + _FOOTER,
    }),
    "Birthday": ("email", {
        "subject": "Happy birthday, {{ first_name | default: 'friend' }}!",
        "html": "<h1>Happy birthday!</h1><p>A treat from us: free delivery all week.</p>" + _FOOTER,
    }),
    "Renewal reminder": ("sms", {
        "body": "Hi {{ first_name | default: 'there' }}, your Hartley & Finch plan ends on "
                "{{ profile.contract_end }}. Renew in the app. Reply STOP to opt out",
    }),
    "Winter sale A": ("email", {
        "subject": "Winter sale: up to 40% off",
        "html": "<h1>Winter sale</h1><p>Up to 40% off coats and boots, this week only.</p>" + _FOOTER,
    }),
    "Winter sale B": ("email", {
        "subject": "{{ first_name | default: 'Hello' }}, your winter picks are 40% off",
        "html": "<h1>Picked for you, {{ first_name | default: 'friend' }}</h1><p>Your favourite "
                "{{ profile.favourite_category | default: 'styles' }} are up to 40% off.</p>" + _FOOTER,
    }),
}  # fmt: skip


@dataclass(frozen=True)
class MarketingReport:
    """What the demo set up."""

    segments: int
    templates: int
    campaigns: int


def seed_marketing(runtime: Runtime, *, workspace_id: int) -> MarketingReport:
    """Create the demo's segments, templates and campaigns (skipping names that exist)."""
    now = runtime.clock.now()
    segment_ids: dict[str, int] = {}
    template_ids: dict[str, int] = {}
    for name, text in SEGMENTS.items():
        with runtime.sessions() as db:
            existing = {s.name: s.id for s in segments_service.list_segments(db, workspace_id=workspace_id)}
            if name in existing:
                segment_ids[name] = existing[name]
                continue
            segment = segments_service.create_segment(
                db, workspace_id=workspace_id, data=SegmentCreate(name=name, text=text), actor="demo", now=now
            )
            db.commit()
            segment_ids[name] = segment.id
    with runtime.sessions() as db:
        known = content_service.list_templates(db, workspace_id=workspace_id, page=Page(limit=1000, offset=0))
        template_ids.update({t.name: t.id for t in known if t.name in TEMPLATES})
        for name, (channel, content) in TEMPLATES.items():
            if name in template_ids:
                continue
            template, _ = content_service.create_template(
                db,
                workspace_id=workspace_id,
                data=TemplateCreate(name=name, channel=channel, content=content),
                actor="demo",
                now=now,
            )
            template_ids[name] = template.id
        campaigns = [
            CampaignCreate(
                name="Welcome series",
                kind="triggered",
                channel="email",
                trigger={"type": "event", "event": "signed_up"},
                variants=[{"key": "A", "name": "Welcome", "template_id": template_ids["Welcome"]}],
                control_percent=10,
                goal_event="order_completed",
                goal_days=14,
            ),
            CampaignCreate(
                name="Birthday treat",
                kind="date_relative",
                channel="email",
                trigger={"type": "date", "trait": "birthday", "anniversary": True, "at": "09:00"},
                variants=[{"key": "A", "name": "Birthday", "template_id": template_ids["Birthday"]}],
                control_percent=10,
            ),
            CampaignCreate(
                name="Renewal reminder",
                kind="date_relative",
                channel="sms",
                trigger={"type": "date", "trait": "contract_end", "offset_days": -30, "at": "10:00"},
                variants=[{"key": "A", "name": "Reminder", "template_id": template_ids["Renewal reminder"]}],
                goal_event="plan_renewed",
                goal_days=30,
            ),
            CampaignCreate(
                name="Winter sale",
                kind="broadcast",
                channel="email",
                segment_ids=[segment_ids["Recent buyers"], segment_ids["Email engaged"]],
                exclude_segment_ids=[segment_ids["Lapsed customers"]],
                variants=[
                    {"key": "A", "name": "Plain", "template_id": template_ids["Winter sale A"]},
                    {"key": "B", "name": "Personal", "template_id": template_ids["Winter sale B"]},
                ],
                control_percent=10,
                experiment={"test_percent": 20, "metric": "click", "test_hours": 4},
                local_time="10:00",
                cost_per_message=0.002,
            ),
        ]
        live_names = {c.name for c in campaigns_service.list_campaigns(db, workspace_id=workspace_id)}
        for data in campaigns:
            if data.name in live_names:
                continue
            campaign = campaigns_service.create_campaign(
                db, workspace_id=workspace_id, data=data, actor="demo", now=now
            )
            if data.kind != "broadcast":
                campaigns_service.do_launch(
                    db, workspace_id=workspace_id, campaign_id=campaign.id, actor="demo", now=now
                )
        db.commit()
    return MarketingReport(len(segment_ids), len(template_ids), len(campaigns))
