"""Big import files read in a second process: the same outcome as one process, row for row."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from rapport.collect import codec, import_pipeline
from rapport.collect.import_files import import_file
from rapport.collect.importer import Prepared
from rapport.runtime import Runtime
from tests.collect.processing_support import events, identities, live_profiles
from tests.support.tenants import Tenant


def _profiles(path: Path) -> None:
    path.write_text(
        "user_id,email,phone,tier\n"
        "u1,one@x.io,07911 123456,gold\n"
        "u2,not-an-email,,free\n"  # refused: email
        ",,,orphan\n"  # refused: no identifier
        "u3,three@x.io,,silver\n"
        "u1,,,platinum\n",  # the same person again: the later row wins
        encoding="utf-8",
    )


def _events(path: Path) -> None:
    lines = [
        {"type": "track", "userId": "u1", "event": "Order", "messageId": "m1", "properties": {"total": 5}},
        {"type": "identify", "anonymousId": "a9", "traits": {"email": "three@x.io"}, "messageId": "m2"},
        {"type": "alias", "userId": "u2", "previousId": "u3", "messageId": "m3"},
        {"type": "track", "userId": "u1", "event": "Order", "messageId": "m1"},  # duplicate in the file
        {"type": "track", "event": "No one", "messageId": "m4"},  # refused: no identifier
        {"type": "page", "userId": "u3", "name": "Home"},  # no messageId: derived from the content
    ]
    text = "\n".join(json.dumps(x) for x in lines)
    path.write_text(text + "\n{broken\n", encoding="utf-8")


Outcome = tuple[int, int, int, int, int, int, list[list[str]]]
State = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]


def _state(runtime: Runtime, ws: int) -> State:
    people = sorted(
        ((sorted(p.traits.items()), p.email, p.phone) for p in live_profiles(runtime, ws)), key=repr
    )
    stored = sorted(
        (
            (e.message_id, e.type, e.event, e.properties, e.profile_id is not None)
            for e in events(runtime, ws)
        ),
        key=repr,
    )
    return people, stored, len(set(identities(runtime, ws).values()))


def _run(
    runtime: Runtime, tenant: Tenant, tmp_path: Path, *, pipeline: bool
) -> tuple[Outcome, Outcome, State]:
    ws = tenant.workspace_id
    people, messages = tmp_path / "people.csv", tmp_path / "events.jsonl"
    _profiles(people)
    _events(messages)
    reports: list[Outcome] = []
    for path, kind in ((people, "profiles"), (messages, "events")):
        errors = tmp_path / f"{kind}-{pipeline}.csv"
        r = import_file(
            runtime, workspace_id=ws, path=path, kind=kind, error_path=errors, batch_size=2, pipeline=pipeline
        )
        refused = [row[:2] for row in csv.reader(errors.open(encoding="utf-8"))][1:]
        reports.append((r.rows, r.imported, r.created, r.duplicates, r.failed, r.merges, refused))
    return reports[0], reports[1], _state(runtime, ws)


@pytest.fixture
def other(runtime: Runtime) -> Tenant:
    from tests.support.tenants import make_tenant

    return make_tenant(runtime, slug="other")


def test_a_file_read_in_a_second_process_imports_exactly_like_one_process(
    runtime: Runtime, tenant: Tenant, other: Tenant, tmp_path: Path
) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _run(runtime, tenant, tmp_path / "one", pipeline=False)
    two = _run(runtime, other, tmp_path / "two", pipeline=True)
    assert two == one
    profiles, messages, (people, stored, owners) = one
    assert profiles[4] == 2 and profiles[6] == [["2", "email"], ["3", ""]]
    assert messages[3] == 1 and [r[0] for r in messages[6]] == ["5", "7"]
    assert len(stored) == 4  # m1, m2, m3 and the page's derived id
    tiers = sorted(str(dict(traits).get("tier")) for traits, _email, _phone in people)
    assert tiers == ["platinum", "silver"] and owners == 2  # u1's later row won; u2 became u3 by the alias


def test_the_readers_exception_is_raised_by_the_import(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type":"track","userId":"u","event":"A","messageId":"x"}\n\xff\xfe not utf-8\n')
    with pytest.raises(UnicodeDecodeError):
        import_file(runtime, workspace_id=tenant.workspace_id, path=path, kind="events", pipeline=False)
    with pytest.raises(UnicodeDecodeError):
        import_file(runtime, workspace_id=tenant.workspace_id, path=path, kind="events", pipeline=True)


def test_big_files_use_the_reader_process_and_small_ones_do_not(tmp_path: Path) -> None:
    small, big = tmp_path / "s.jsonl", tmp_path / "b.jsonl"
    small.write_text("{}\n")
    big.write_bytes(b" " * import_pipeline.PIPELINE_MIN_BYTES)
    assert import_pipeline.use_pipeline(small, None) is False
    assert import_pipeline.use_pipeline(big, None) is True
    assert (
        import_pipeline.use_pipeline(big, False) is False
        and import_pipeline.use_pipeline(small, True) is True
    )


def _prepared_batches() -> list[Prepared]:
    from datetime import UTC, datetime

    from rapport.collect.identity import IdentityRules
    from rapport.collect.importer import prepare_events, prepare_profiles

    rules, now = IdentityRules(), datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
    messages = [
        {"type": "identify", "userId": "u1", "traits": {"email": "A@x.io", "n": 1.5, "tags": ["a"]},
         "context": {"timezone": "Europe/London", "traits": {"x": None}}, "messageId": "m1"},
        {"type": "track", "anonymousId": "a1", "event": "Order", "properties": {"total": 9.99},
         "timestamp": "2026-10-01T10:00:00Z", "sentAt": "2026-10-01T10:00:01Z", "messageId": "m2"},
        {"type": "alias", "userId": "u2", "previousId": "a1", "messageId": "m3"},
        {"type": "track", "event": "No one"},
    ]  # fmt: skip
    people = [{"user_id": "u1", "email": "b@x.io", "tier": "gold", "updated_at": "2026-01-02T03:04:05+01:00"},
              {"tier": "orphan"}]  # fmt: skip
    return [
        prepare_events(list(enumerate(messages, start=1)), rules, now),
        prepare_profiles(list(enumerate(people, start=1)), rules, now),
    ]


_JSON_COLUMNS = ("properties", "traits", "context", "extra")


def _as_stored(batch: Prepared) -> Prepared:
    """``batch`` as the writer gets it: each event's JSON columns as their stored text, but an alias's."""
    if not batch.events:
        return batch
    events = [
        row if touch is None else {**row, **{k: codec.dumps_text(row[k]) for k in _JSON_COLUMNS}}
        for row, touch in zip(batch.events, batch.touches, strict=True)
    ]
    return dataclasses.replace(batch, events=events)


def test_batches_cross_the_pipe_as_json_and_come_back_equal() -> None:
    for batch in _prepared_batches():
        frame = import_pipeline.encode(batch)
        assert frame[:1] == b"J"
        again = import_pipeline.decode(frame)
        assert again == _as_stored(batch)
        assert [type(t) for t in again.touches] == [type(t) for t in batch.touches]
    events = _prepared_batches()[0]
    assert events.touches[2] is None and len(events.errors) == 1  # the alias's touch is built later
    again = import_pipeline.decode(import_pipeline.encode(events))
    assert json.loads(again.events[1]["properties"]) == {"total": 9.99}  # text, parsed back equal
    assert again.events[2]["extra"] == events.events[2]["extra"]  # the alias keeps its objects


def test_a_batch_json_cannot_hold_exactly_crosses_as_pickle() -> None:
    batch = _prepared_batches()[0]
    touch = batch.touches[0]
    assert touch is not None and touch.traits is not None
    touch.traits["n"] = 2**70 + 1  # orjson holds 64-bit integers only
    frame = import_pipeline.encode(batch)
    assert frame[:1] == b"P"
    assert import_pipeline.decode(frame) == _as_stored(batch)


def test_a_property_json_cannot_hold_exactly_is_stored_exactly_through_the_pipe(
    runtime: Runtime, tenant: Tenant, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    line = {
        "type": "track",
        "userId": "u1",
        "event": "Big",
        "messageId": "b1",
        "properties": {"n": 2**70 + 1},
    }
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    report = import_file(runtime, workspace_id=tenant.workspace_id, path=path, kind="events", pipeline=True)
    assert report.imported == 1
    [stored] = events(runtime, tenant.workspace_id)
    assert stored.properties == {"n": 2**70 + 1}
