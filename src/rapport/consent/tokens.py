"""Signed links for unsubscribe, preference centre and double opt-in confirmation.

Unsubscribe links never expire (R12 asks for at least 30 days; a person may dig out an old email); the
confirmation link of a double opt-in expires after a week.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from rapport.errors import NotFound

CONFIRM_MAX_AGE_SECONDS = 7 * 24 * 3600
UNSUBSCRIBE_SALT = "rapport.unsubscribe"

#: Payloads shorter than this are not tried with zlib (a deflate stream costs more than it saves on them).
COMPRESS_FROM = 120


#: What itsdangerous' ``_CompactJSON.dumps`` writes, with the encoder built once
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class TokenSigner:
    """Writes the tokens ``URLSafeSerializer(secret, salt=salt).dumps`` writes (JSON, base64, HMAC-SHA1 over
    the key itsdangerous derives), with the key derived once instead of per token; ``loads`` of the same
    serializer reads them. A payload under ``COMPRESS_FROM`` bytes is never zlib-compressed (itsdangerous
    tries every one: a deflate set-up per link), so such a token can differ from itsdangerous' own only
    where compression would have shortened it, and is read back all the same."""

    __slots__ = ("_mac",)

    def __init__(self, secret: str, salt: str) -> None:
        # itsdangerous' default derivation ("django-concat", SHA-1): the tokens must verify with it
        key = hashlib.sha1(salt.encode() + b"signer" + secret.encode()).digest()  # noqa: S324
        self._mac = hmac.new(key, digestmod=hashlib.sha1)

    def dumps(self, obj: Any) -> str:
        """Return the signed token of ``obj``."""
        data = _COMPACT_JSON.encode(obj).encode()
        payload = b""
        if len(data) >= COMPRESS_FROM:
            packed = zlib.compress(data)
            if len(packed) < len(data) - 1:
                payload = b"." + _b64(packed)
        payload = payload or _b64(data)
        mac = self._mac.copy()
        mac.update(payload)
        return (payload + b"." + _b64(mac.digest())).decode()


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Who and what a link is about."""

    workspace_id: int
    profile_id: int
    channel: str
    topic: str = ""
    message_id: str | None = None


def _payload(target: LinkTarget) -> dict[str, object]:
    data: dict[str, object] = {"w": target.workspace_id, "p": target.profile_id, "c": target.channel}
    if target.topic:
        data["t"] = target.topic
    if target.message_id:
        data["m"] = target.message_id
    return data


def _target(data: object) -> LinkTarget:
    if not isinstance(data, dict):
        raise NotFound("this link is not valid")
    try:
        return LinkTarget(
            workspace_id=int(data["w"]),
            profile_id=int(data["p"]),
            channel=str(data["c"]),
            topic=str(data.get("t", "")),
            message_id=str(data["m"]) if data.get("m") else None,
        )
    except (KeyError, TypeError, ValueError):
        raise NotFound("this link is not valid") from None


@lru_cache(maxsize=8)
def _unsubscribe_signer(secret: str) -> TokenSigner:
    return TokenSigner(secret, UNSUBSCRIBE_SALT)


def unsubscribe_token(secret: str, target: LinkTarget) -> str:
    """Return the token of a one-click unsubscribe / preference-centre link (signed with the key derived
    once per secret: one per message sent, this was a fifteenth of the deliverer's main-thread time)."""
    return _unsubscribe_signer(secret).dumps(_payload(target))


def read_unsubscribe_token(secret: str, token: str) -> LinkTarget:
    """Return what an unsubscribe token is about, or raise NotFound for a forged one."""
    try:
        return _target(URLSafeSerializer(secret, salt=UNSUBSCRIBE_SALT).loads(token))
    except BadSignature:
        raise NotFound("this link is not valid") from None


def confirm_token(secret: str, target: LinkTarget) -> str:
    """Return the token of a double opt-in confirmation link (valid a week)."""
    return URLSafeTimedSerializer(secret, salt="rapport.confirm").dumps(_payload(target))


def read_confirm_token(secret: str, token: str) -> LinkTarget:
    """Return what a confirmation token is about; expired or forged tokens raise NotFound."""
    try:
        data = URLSafeTimedSerializer(secret, salt="rapport.confirm").loads(
            token, max_age=CONFIRM_MAX_AGE_SECONDS
        )
    except SignatureExpired:
        raise NotFound("this confirmation link has expired; sign up again to get a new one") from None
    except BadSignature:
        raise NotFound("this link is not valid") from None
    return _target(data)


def form_token(secret: str, token: str) -> str:
    """Return the anti-forgery value a preference-centre form must send back with ``token``."""
    return URLSafeSerializer(secret, salt="rapport.prefs-form").dumps(token[-32:])


def check_form_token(secret: str, token: str, sent: str) -> bool:
    """Tell whether ``sent`` is the form token of ``token``."""
    try:
        return bool(URLSafeSerializer(secret, salt="rapport.prefs-form").loads(sent) == token[-32:])
    except BadSignature:
        return False
