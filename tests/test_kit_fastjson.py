"""JSON read through orjson only where it answers as ``json.loads`` does, and the stores' JSON columns read
back exactly what was written (PostgreSQL's engine parses json/jsonb with ``fastjson.loads``)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from rapport.kit import fastjson
from rapport.models import Profile
from rapport.runtime import Runtime
from tests.support.tenants import Tenant

EDGES = [
    '{"a": 1, "b": [1.5, -0.0, 1e-05, 12345678901234567890123], "c": "\\u00e9\\ud83d\\ude00"}',
    '\ufeff{"bom": true}',
    "18446744073709551616",
    '{"tiny": 5e-324, "big": 1.7976931348623157e308, "neg": -9223372036854775809}',
    '[true, false, null, "", {}]',
]


@pytest.mark.parametrize("text", EDGES)
def test_loads_gives_json_loads_answer(text: str) -> None:
    expected = json.loads(text.encode())
    got = fastjson.loads(text.encode())
    assert got == expected and type(got) is type(expected)
    assert fastjson.loads(text) == expected


def test_fast_path_taken_only_where_it_is_safe() -> None:
    assert fastjson.fast_loads(b'{"a": [1, 2.5]}') == (True, {"a": [1, 2.5]})
    assert fastjson.fast_loads(b"12345678901234567890") == (False, None)  # past 64 bits
    assert fastjson.fast_loads(b"\xef\xbb\xbf{}") == (False, None)  # byte-order mark


def test_json_columns_read_back_exactly(runtime: Runtime, tenant: Tenant) -> None:
    traits = {
        "huge": 123456789012345678901234567890,
        "price": 19.99,
        "small": 1e-05,
        "name": "Zoë 😀",
        "nested": {"list": [1, "two", None, True]},
    }
    with runtime.sessions() as db:
        profile = Profile(workspace_id=tenant.workspace_id, traits=traits)
        db.add(profile)
        db.commit()
        pid = profile.id
    with runtime.read_sessions() as db:
        stored = db.execute(select(Profile.traits).where(Profile.id == pid)).scalar_one()
    assert stored == traits
    assert type(stored["huge"]) is int and type(stored["price"]) is float
