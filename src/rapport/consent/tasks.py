"""Background job of consent: the double opt-in confirmation email (R15).

``start_double_opt_in`` (consent/api.py) puts the address in ``pending`` and enqueues
``consent.send_confirmation`` in the same transaction. The job queues one email of kind ``confirmation``
in the outbox with the signed ``/c/{token}`` link: the only message a pending address may get (the
Deliverer's consent check lets confirmations through and stops marketing until the click), never capped
nor held for quiet hours, without unsubscribe headers. The outbox dedupe key is the consent record, so a
job run twice queues one email.

A workspace may word it in ``settings["consent"]["confirmation_email"]`` (``subject``, ``html``,
``text``: Liquid, with ``{{ data.confirm_url }}`` and ``{{ data.brand }}``).
"""

from __future__ import annotations

from typing import Any

from rapport.consent import links, rules, service
from rapport.consent import repository as repo
from rapport.consent.tokens import LinkTarget
from rapport.errors import NotFound
from rapport.messaging import service as messaging_service
from rapport.models import Workspace
from rapport.worker.runner import JobContext, PermanentJobError

JOB_KIND = "consent.send_confirmation"
#: Ahead of campaigns in the outbox (lower runs first): the person is waiting for it.
PRIORITY = 10

SUBJECT = "Please confirm your subscription to {{ data.brand }}"
HTML = (
    "<p>Hello{% if profile.first_name %} {{ profile.first_name }}{% endif %},</p>"
    "<p>Please confirm that you would like to receive emails from {{ data.brand }}.</p>"
    '<p><a href="{{ data.confirm_url }}">Yes, subscribe me</a></p>'
    "<p>If you did not ask for this, ignore this email: you will not hear from us.</p>"
)
TEXT = (
    "Hello{% if profile.first_name %} {{ profile.first_name }}{% endif %},\n\n"
    "Please confirm that you would like to receive emails from {{ data.brand }}:\n"
    "{{ data.confirm_url }}\n\n"
    "If you did not ask for this, ignore this email: you will not hear from us.\n"
)


def confirmation_content(workspace: Workspace, confirm_url: str) -> dict[str, Any]:
    """Return the outbox content of the confirmation email (the workspace's wording, else ours)."""
    consent_settings = (workspace.settings or {}).get("consent") or {}
    custom = consent_settings.get("confirmation_email") if isinstance(consent_settings, dict) else None
    wording = custom if isinstance(custom, dict) else {}
    return {
        "subject": str(wording.get("subject") or SUBJECT),
        "html": str(wording.get("html") or HTML),
        "text": str(wording.get("text") or TEXT),
        "data": {"confirm_url": confirm_url, "brand": workspace.name},
    }


def run_send_confirmation(ctx: JobContext) -> dict[str, Any]:
    """Job: queue the confirmation email of a double opt-in (skipped when the address is no longer
    pending: confirmed, withdrawn or erased meanwhile)."""
    workspace_id = ctx.job.workspace_id
    payload = ctx.job.payload
    if workspace_id is None or not payload.get("profile_id"):
        raise PermanentJobError("a confirmation needs a workspace and a profile")
    db = ctx.db
    workspace = db.get(Workspace, workspace_id)
    if workspace is None:
        raise PermanentJobError("the workspace no longer exists")
    try:
        profile = service.get_profile(db, workspace_id=workspace_id, profile_id=int(payload["profile_id"]))
    except NotFound:
        return {"skipped": "the profile no longer exists"}
    state = repo.get_subscription(
        db, workspace_id=workspace_id, profile_id=profile.id, channel="email", topic=""
    )
    if state is None or state.state != rules.PENDING:
        return {"skipped": f"email is {state.state if state else rules.NEVER_ASKED}, not pending"}
    topic = str(payload.get("topic") or "")
    url = links.confirm_url(ctx.runtime, LinkTarget(workspace_id, profile.id, "email", topic))
    record_id = payload.get("consent_record_id") or ctx.job.id
    message = messaging_service.enqueue(
        db,
        workspace_id=workspace_id,
        profile_id=profile.id,
        channel="email",
        kind="confirmation",
        content=confirmation_content(workspace, url),
        dedupe_key=f"confirm:{workspace_id}:{profile.id}:{record_id}",
        priority=PRIORITY,
        now=ctx.runtime.clock.now(),
    )
    return {"message_id": message.message_id if message else None}
