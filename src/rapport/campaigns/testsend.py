"""A test send: each variant once to seed addresses, rendered as a chosen profile (or with no profile
data), straight through the channel adapter — never through the outbox, so nothing is counted, capped or
attributed, and the subject (or body) says [TEST]."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from rapport.campaigns import repository as repo
from rapport.campaigns import sending
from rapport.content.rendering import recipient_facts
from rapport.content.stores import nearest_store, placed_stores
from rapport.errors import NotFound, ValidationFailed
from rapport.messaging.delivery import channels_of
from rapport.messaging.render import RecipientFacts, RenderError, build, sender_defaults
from rapport.models import Campaign, Message, Profile, Workspace
from rapport.personalize import TemplateEngine
from rapport.runtime import Runtime

TEST_CHANNELS = ("email", "sms", "webhook")


def do_test_send(
    db: Session,
    *,
    runtime: Runtime,
    workspace: Workspace,
    campaign: Campaign,
    addresses: Sequence[str],
    profile_id: int | None,
    variants: Sequence[str],
    now: datetime,
) -> list[dict[str, Any]]:
    """Send each chosen variant to each address now; return one result per (variant, address)."""
    if campaign.channel not in TEST_CHANNELS:
        raise ValidationFailed(
            f"test sends go by {', '.join(TEST_CHANNELS)}; preview {campaign.channel} instead"
        )
    targets = list(addresses) or list(campaign.seed_addresses or [])
    if not targets:
        raise ValidationFailed(
            "give addresses or set the campaign's seed addresses", details={"field": "addresses"}
        )
    channel = channels_of(runtime).get(campaign.channel)
    if channel is None:
        raise ValidationFailed(f"no {campaign.channel} channel is configured")
    traits: dict[str, Any] = {}
    timezone = workspace.timezone
    computed: dict[str, Any] = {}
    segments: list[str] = []
    if profile_id is not None:
        profile = db.get(Profile, profile_id)
        if profile is None or profile.workspace_id != workspace.id:
            raise NotFound("profile not found")
        traits = dict(profile.traits or {})
        timezone = profile.timezone or timezone
        computed, segments = recipient_facts(db, workspace.id, [profile.id], now)[profile.id]
    store = nearest_store(placed_stores(workspace.settings), traits)
    prepared = sending.prepare(db, campaign)
    keys = list(variants) or [v.key for v in repo.variants_of(db, campaign_id=campaign.id)]
    unknown = [k for k in keys if k not in prepared.contents]
    if unknown:
        raise ValidationFailed(f"unknown variants: {', '.join(unknown)}", details={"field": "variants"})
    engine = TemplateEngine()
    defaults = sender_defaults(runtime.settings, workspace)
    base = runtime.settings.base_url.rstrip("/")
    links = {"unsubscribe": f"{base}/u/test", "preferences": f"{base}/u/test"}
    results: list[dict[str, Any]] = []
    for key in keys:
        content = dict(prepared.contents[key])
        if campaign.channel == "email":
            content["subject"] = f"[TEST] {content.get('subject') or ''}"
        elif campaign.channel == "sms":
            content["body"] = f"[TEST] {content.get('body') or ''}"
        for address in targets:
            message = Message(
                workspace_id=workspace.id,
                message_id=uuid.uuid4().hex,
                dedupe_key="test",
                profile_id=profile_id or 0,
                campaign_id=campaign.id,
                variant=key,
                channel=campaign.channel,
                topic=campaign.topic,
                kind="service",  # a test is not marketing to the seed address: no tracking, no caps
                content=content,
            )
            try:
                outbound = build(
                    engine,
                    message,
                    RecipientFacts(
                        profile_id=profile_id or 0,
                        address=address,
                        traits=traits,
                        timezone=timezone,
                        locale=str(traits.get("locale") or "en_GB"),
                        currency=str(traits.get("currency") or "GBP"),
                        computed=computed,
                        segments=tuple(segments),
                        store=store,
                    ),
                    now=now,
                    links=links,
                    defaults=defaults,
                )
            except RenderError as exc:
                results.append(
                    {"variant": key, "address": address, "status": "render_failed", "error": str(exc)}
                )
                continue
            sent = channel.send([outbound])[0]
            results.append(
                {
                    "variant": key,
                    "address": address,
                    "status": sent.status.value,
                    "error": sent.error,
                }
            )
    return results
