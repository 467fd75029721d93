"""Email into a local Maildir instead of an SMTP server: the demo's and a developer's mail catcher.

``RAPPORT_EMAIL_MAILDIR=/path`` (with no ``RAPPORT_SMTP_HOST``) makes this the email channel: each message is
built exactly as the SMTP channel builds it (:func:`rapport.channels.mime.build_email`: MIME parts,
List-Unsubscribe, Message-ID, DKIM when configured) and delivered into the Maildir the standard way
(written under ``tmp/``, then renamed into ``new/``), so any mail client can open the folder and a
half-written message is never seen. The marketer UI lists and shows captured messages
(Settings → Channels → Captured mail). Nothing leaves the machine.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from rapport.channels.base import OutboundMessage, SendJournal, SendResult, SendStatus, permanent, transient
from rapport.channels.mime import MimeError, build_email


class MaildirChannel:
    """The email channel writing each message into a Maildir (see the module docstring)."""

    name = "email"
    supports_journal = True

    def __init__(self, path: str | Path, *, id_domain: str | None = None) -> None:
        self.path = Path(path)
        self.id_domain = id_domain
        self._box: mailbox.Maildir | None = None

    def _mailbox(self) -> mailbox.Maildir:
        if self._box is None:
            self._box = mailbox.Maildir(self.path, create=True)
        return self._box

    def send(self, batch: Sequence[OutboundMessage], journal: SendJournal | None = None) -> list[SendResult]:
        """Deliver each message into the Maildir; results in batch order."""
        results: list[SendResult] = []
        for message in batch:
            payload = message.email
            if payload is None:
                results.append(permanent(message, "message has no email payload", code="no_payload"))
                continue
            try:
                data = build_email(
                    payload, to=message.to, message_id=message.message_id, id_domain=self.id_domain
                )
            except MimeError as exc:
                results.append(permanent(message, str(exc), code="invalid_message"))
                continue
            if journal is not None:
                journal.committing(message.message_id)
            try:
                key = self._mailbox().add(data)
            except OSError as exc:
                results.append(transient(message, f"cannot write the Maildir: {exc}", code="maildir"))
                continue
            if journal is not None:
                journal.accepted(message.message_id, key)
            results.append(SendResult(message.message_id, SendStatus.SENT, provider_id=key))
        return results

    def close(self) -> None:
        """Nothing to release (files are closed after each message)."""
        self._box = None


@dataclass(frozen=True)
class Captured:
    """One captured message as the UI shows it."""

    key: str
    subject: str
    sender: str
    to: str
    date: datetime | None
    headers: list[tuple[str, str]]
    html: str
    text: str


def _parse(key: str, raw: bytes, *, bodies: bool) -> Captured:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    try:
        date = parsedate_to_datetime(str(msg["Date"])) if msg["Date"] else None
    except (TypeError, ValueError):
        date = None
    html = text = ""
    if bodies:
        html_part = msg.get_body(preferencelist=("html",))
        text_part = msg.get_body(preferencelist=("plain",))
        html = html_part.get_content() if isinstance(html_part, EmailMessage) else ""
        text = text_part.get_content() if isinstance(text_part, EmailMessage) else ""
    return Captured(
        key=key,
        subject=str(msg["Subject"] or ""),
        sender=str(msg["From"] or ""),
        to=str(msg["To"] or ""),
        date=date,
        headers=[(k, str(v)) for k, v in msg.items()] if bodies else [],
        html=html,
        text=text,
    )


def captured(path: str | Path, *, limit: int = 50) -> tuple[int, list[Captured]]:
    """Return how many messages the Maildir holds and the newest ``limit`` of them (headers only)."""
    folder = Path(path)
    if not folder.is_dir():
        return 0, []
    files = [
        f
        for sub in ("new", "cur")
        if (folder / sub).is_dir()
        for f in (folder / sub).iterdir()
        if f.is_file()
    ]
    if limit <= 0:
        return len(files), []
    files.sort(key=lambda f: (f.stat().st_mtime, f.name), reverse=True)
    out = []
    for file in files[:limit]:
        key = file.name.split(":", 1)[0]
        with file.open("rb") as handle:
            out.append(_parse(key, handle.read(64 * 1024), bodies=False))
    return len(files), out


def captured_message(path: str | Path, key: str) -> Captured | None:
    """Return one captured message with its headers and bodies, or None when there is no such key."""
    folder = Path(path)
    if not folder.is_dir() or not key or "/" in key or key.startswith("."):
        return None
    box = mailbox.Maildir(folder, create=False)
    try:
        raw = box.get_bytes(key)
    except KeyError:
        return None
    return _parse(key, raw, bodies=True)
