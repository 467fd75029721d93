"""R27: personal data stays out of logs; every line is JSON with the request id."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rapport.kit.logs import configure_logging, redact
from tests.support.tenants import Tenant

CANARY_EMAIL = "canary.person+x@example-mail.co.uk"
CANARY_PHONE = "+44 7700 900123"


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level="DEBUG", json_lines=True, stream=stream)
    yield stream
    configure_logging(level="WARNING", json_lines=False)


def test_redact_masks_emails_and_phone_numbers() -> None:
    text = f"mail {CANARY_EMAIL} phone {CANARY_PHONE} or 07700900123, order 12345, id 2026-11-23"
    masked = redact(text)
    assert CANARY_EMAIL not in masked and "7700" not in masked
    assert "order 12345" in masked and "2026-11-23" in masked


def test_request_logs_carry_no_personal_data(
    app: FastAPI, client: TestClient, tenant: Tenant, log_stream: io.StringIO
) -> None:
    @app.get("/leaky/{who}")
    def leaky(who: str) -> None:
        logging.getLogger("rapport.test").warning("looking up %s with phone %s", who, CANARY_PHONE)
        raise RuntimeError(f"no customer {who}")

    client.get(f"/leaky/{CANARY_EMAIL}?email={CANARY_EMAIL}&phone={CANARY_PHONE}")
    client.get(f"/api/v1/workspace?email={CANARY_EMAIL}", headers=tenant.secret_headers)
    output = log_stream.getvalue()
    assert output, "nothing was logged"
    assert CANARY_EMAIL not in output
    assert "7700 900123" not in output and "7700900123" not in output
    lines = [json.loads(line) for line in output.splitlines()]
    access = [line for line in lines if line["logger"] == "rapport.access"]
    assert access and all(line.get("request_id") for line in access)
    assert any(line["level"] == "error" and "exc" in line for line in lines)
