"""An in-memory channel for tests and local runs: records what it was given, fails on request."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from rapport.channels.base import OutboundMessage, SendJournal, SendResult, SendStatus


class FakeChannel:
    """Records every message; ``outcomes`` (by message_id) or ``decide`` choose a non-``sent`` status.

    Example::

        channel = FakeChannel("sms", outcomes={"m2": SendStatus.FAILED_TRANSIENT})
        results = channel.send([m1, m2])
        assert [r.status for r in results] == [SendStatus.SENT, SendStatus.FAILED_TRANSIENT]
        assert channel.sent == [m1]
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        outcomes: Mapping[str, SendStatus] | None = None,
        decide: Callable[[OutboundMessage], SendStatus] | None = None,
        fail_all: SendStatus | None = None,
    ) -> None:
        self.name = name
        self.outcomes: dict[str, SendStatus] = dict(outcomes or {})
        self.decide = decide
        self.fail_all = fail_all
        self.received: list[OutboundMessage] = []
        self.sent: list[OutboundMessage] = []
        self.batches: list[list[OutboundMessage]] = []
        self.closed = False
        self._lock = threading.Lock()
        self._counter = 0

    supports_journal = True

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Record the batch and answer a result per message (``sent`` unless told otherwise)."""
        if self.closed:
            raise RuntimeError(f"channel {self.name!r} is closed")
        results: list[SendResult] = []
        with self._lock:
            self.batches.append(list(batch))
            for message in batch:
                self.received.append(message)
                status = self._status_for(message)
                if status is SendStatus.SENT or status is SendStatus.UNKNOWN:
                    # "unknown" models a lost acknowledgement: the provider did get it
                    self.sent.append(message)
                self._counter += 1
                provider_id = f"fake-{self._counter}" if status is SendStatus.SENT else None
                if journal is not None:
                    journal.committing(message.message_id)
                    if status is SendStatus.SENT:
                        journal.accepted(message.message_id, provider_id)
                error = None if status is SendStatus.SENT else f"fake {status.value}"
                results.append(SendResult(message.message_id, status, provider_id=provider_id, error=error))
        return results

    def _status_for(self, message: OutboundMessage) -> SendStatus:
        if message.message_id in self.outcomes:
            return self.outcomes[message.message_id]
        if self.decide is not None:
            return self.decide(message)
        return self.fail_all or SendStatus.SENT

    def close(self) -> None:
        """Mark the channel closed; later sends raise."""
        self.closed = True
