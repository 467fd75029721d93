"""A local server on 127.0.0.1 that speaks the Twilio Messages API wire format, and sends signed webhooks.

It accepts ``POST /2010-04-01/Accounts/{Sid}/Messages.json`` (form-encoded, HTTP Basic auth), answers
``201`` with a message resource (``sid``, ``status: queued``, ``num_segments`` …) or a Twilio error document
(``{"code", "message", "more_info", "status"}``), and records what it received. It can then play Twilio's
side of the webhooks: ``deliver()`` posts a status callback and ``send_inbound()`` an incoming text, both
signed with ``X-Twilio-Signature`` computed here independently of ``rapport``.

Special numbers (like Twilio's magic test numbers): ``INVALID`` → 400/21211, ``NOT_MOBILE`` → 400/21614,
``THROTTLED`` → 429/20429 with Retry-After, ``BROKEN`` → 500, ``DROP`` → connection closed without an answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx

INVALID = "+15005550001"
NOT_MOBILE = "+15005550009"
THROTTLED = "+15005550429"
BROKEN = "+15005550500"
DROP = "+15005550999"


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented scheme: base64(HMAC-SHA1(token, url + name1 + value1 + … sorted by name))."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


@dataclass
class FakeMessage:
    """A message the fake accepted."""

    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None
    status: str = "queued"


class FakeTwilio:
    """``with FakeTwilio(account_sid, auth_token) as twilio: twilio.base_url``."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "test-token") -> None:  # noqa: S107
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.messages: list[FakeMessage] = []
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                status, doc = outer._handle(self.path, self.headers.get("Authorization", ""), form)
                if status == 0:
                    self.close_connection = True  # the request was read; the answer never comes
                    return
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "7")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def _error(self, status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
        return status, {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }

    def _handle(self, path: str, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(form)
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if not hmac.compare_digest(authorization, expected):
            return self._error(401, 20003, "Authenticate")
        if path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self._error(404, 20404, "The requested resource was not found")
        to = form.get("To", "")
        if not form.get("Body"):
            return self._error(400, 21602, "Message body is required.")
        if to == INVALID or not to.startswith("+"):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if to == NOT_MOBILE:
            return self._error(400, 21614, f"'To' number {to} is not a valid mobile number")
        if to == THROTTLED:
            return self._error(429, 20429, "Too Many Requests")
        if to == BROKEN:
            return self._error(500, 20500, "Internal Server Error")
        if to == DROP:
            return 0, {}
        message = FakeMessage(
            sid="SM" + secrets.token_hex(16),
            to=to,
            from_=form.get("From") or form.get("MessagingServiceSid", ""),
            body=form["Body"],
            status_callback=form.get("StatusCallback"),
        )
        with self.lock:
            self.messages.append(message)
        return 201, {
            "sid": message.sid,
            "account_sid": self.account_sid,
            "to": message.to,
            "from": message.from_,
            "body": message.body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{message.sid}.json",
        }

    def signed_post(self, url: str, params: dict[str, str]) -> httpx.Response:
        """POST ``params`` to ``url`` the way Twilio does, with ``X-Twilio-Signature``."""
        headers = {"X-Twilio-Signature": signature(self.auth_token, url, params)}
        return httpx.post(url, data=params, headers=headers, timeout=5)

    def deliver(
        self, message: FakeMessage, status: str = "delivered", error_code: str | None = None
    ) -> httpx.Response:
        """Send the status callback Twilio would send for ``message``."""
        assert message.status_callback, "the message has no StatusCallback"
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": self.account_sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "To": message.to,
            "From": message.from_,
            "ApiVersion": "2010-04-01",
        }
        if error_code:
            params["ErrorCode"] = error_code
        message.status = status
        return self.signed_post(message.status_callback, params)

    def send_inbound(self, url: str, *, from_: str, to: str, body: str) -> httpx.Response:
        """Send the webhook Twilio would send when ``from_`` texts ``body`` to our number ``to``."""
        params = {
            "MessageSid": "SM" + secrets.token_hex(16),
            "AccountSid": self.account_sid,
            "From": from_,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "ApiVersion": "2010-04-01",
        }
        return self.signed_post(url, params)

    def __enter__(self) -> FakeTwilio:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
