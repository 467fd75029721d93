"""Push delivery to every browser a person subscribed from, and the removal of expired subscriptions.

An outbox row on the ``push`` channel is one message to one profile; the renderer builds one
``OutboundMessage`` whose ``to`` is the profile id and whose subscription is ``PLACEHOLDER``.
``PushFanoutChannel`` (registered as the ``push`` channel) looks the profile's subscriptions up, sends a copy
to each through the real Web Push adapter (same message id, so the send journal covers every copy), deletes
the subscriptions the push service calls gone (404/410), stamps ``last_success_at`` on the others, and
answers one result per row: sent if any copy was accepted; otherwise unknown, transient or permanent, in
that order. A profile without subscriptions fails permanently (``no_subscription``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from sqlalchemy import delete, select, update

from rapport.channels.base import (
    Channel,
    OutboundMessage,
    PushSubscription,
    SendJournal,
    SendResult,
    SendStatus,
    permanent,
)
from rapport.models import PushSubscriptionRecord
from rapport.runtime import Runtime

PLACEHOLDER = PushSubscription(endpoint="", p256dh="", auth="")


def _combine(message_id: str, answers: list[SendResult]) -> SendResult:
    for status in (SendStatus.SENT, SendStatus.UNKNOWN, SendStatus.FAILED_TRANSIENT):
        found = [a for a in answers if a.status is status]
        if found:
            first = found[0]
            retry = max((a.retry_after or 0.0 for a in found), default=0.0) or None
            return SendResult(
                message_id, status, provider_id=first.provider_id, error=first.error,
                error_code=first.error_code, retry_after=retry,
            )  # fmt: skip
    first = answers[0]
    return SendResult(
        message_id, SendStatus.FAILED_PERMANENT, error=first.error, error_code=first.error_code,
        gone=all(a.gone for a in answers),
    )  # fmt: skip


class PushFanoutChannel:
    """The ``push`` channel of the outbox: fans a message out to the profile's subscriptions."""

    supports_journal = True

    def __init__(self, runtime: Runtime, inner: Channel, *, name: str = "push") -> None:
        self.runtime = runtime
        self.inner = inner
        self.name = name

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Send each message to every subscription of its profile; one combined result per message."""
        results: list[SendResult] = []
        gone: set[int] = set()
        alive: set[int] = set()
        for message in batch:
            if message.push is None or not message.to.isdigit():
                results.append(permanent(message, "message has no push payload", code="no_payload"))
                continue
            with self.runtime.read_sessions() as db:
                subs = db.scalars(
                    select(PushSubscriptionRecord)
                    .where(PushSubscriptionRecord.profile_id == int(message.to))
                    .order_by(PushSubscriptionRecord.id)
                ).all()
                rows = [(s.id, PushSubscription(s.endpoint, s.p256dh, s.auth)) for s in subs]
            if not rows:
                results.append(
                    permanent(message, "the profile has no push subscription", code="no_subscription")
                )
                continue
            copies = [
                dataclasses.replace(message, push=dataclasses.replace(message.push, subscription=sub))
                for _, sub in rows
            ]
            if getattr(self.inner, "supports_journal", False) and journal is not None:
                answers = list(self.inner.send(copies, journal=journal))  # type: ignore[call-arg]
            else:
                answers = list(self.inner.send(copies))
            for (sub_id, _), answer in zip(rows, answers, strict=True):
                if answer.gone:
                    gone.add(sub_id)
                elif answer.status is SendStatus.SENT:
                    alive.add(sub_id)
            results.append(_combine(message.message_id, answers))
        if gone or alive:
            with self.runtime.sessions() as db:
                if gone:
                    db.execute(delete(PushSubscriptionRecord).where(PushSubscriptionRecord.id.in_(gone)))
                if alive:
                    db.execute(
                        update(PushSubscriptionRecord)
                        .where(PushSubscriptionRecord.id.in_(alive))
                        .values(last_success_at=self.runtime.clock.now())
                    )
                db.commit()
        return results

    def close(self) -> None:
        """Close the underlying Web Push channel."""
        self.inner.close()
