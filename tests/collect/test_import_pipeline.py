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
from rapport.errors import ValidationFailed
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
    for pipeline in (False, True):  # the reader process's error arrives as the importer's own
        with pytest.raises(ValidationFailed, match="the file is not UTF-8 text: save it as UTF-8"):
            import_file(
                runtime, workspace_id=tenant.workspace_id, path=path, kind="events", pipeline=pipeline
            )


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


def _hooked_events(path: Path) -> None:
    lines = [
        {"type": "track", "userId": "h1", "event": "order_completed", "messageId": "o1",
         "timestamp": "2026-01-02T10:00:00Z", "properties": {"total": 5, "category": "toys"},
         "context": {"timezone": "Europe/Paris"}},
        {"type": "track", "userId": "h1", "event": "order_completed", "messageId": "o2",
         "timestamp": "2026-01-03T10:00:00Z", "properties": {"total": 7.5, "category": "toys"}},
        {"type": "identify", "userId": "h1", "messageId": "i1", "timestamp": "2026-01-04T10:00:00Z",
         "traits": {"email": "h1@x.io", "email_opt_out": True}},
        {"type": "page", "userId": "h2", "name": "Home", "messageId": "p1", "timestamp": "2026-01-05T10:00:00Z"},
        {"type": "track", "userId": "undefined", "event": "order_completed", "messageId": "j1",
         "properties": {"total": 1}},  # a junk id: stored, linked to no one
        {"type": "track", "userId": "h2", "event": "order_completed", "messageId": "o3",
         "timestamp": "2026-01-06T10:00:00Z", "properties": {"total": 20, "category": "shoes"}},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")


def _hooked_state(runtime: Runtime, ws: int) -> dict[str, Any]:
    from rapport.consent import service as consent_service

    out: dict[str, Any] = {}
    owners = identities(runtime, ws)
    with runtime.read_sessions() as db:
        for who in ("h1", "h2"):
            profile = next(p for p in live_profiles(runtime, ws) if p.id == owners[("user_id", who)])
            subscriptions = consent_service.list_subscriptions(db, workspace_id=ws, profile_id=profile.id)
            computed = {k: v for k, v in profile.computed.items() if not k.startswith("_")}
            out[who] = (computed, profile.timezone, sorted((s.channel, s.state) for s in subscriptions))
    return out


def test_the_hooks_get_the_rows_a_second_process_read_as_one_process_gives_them(
    runtime: Runtime, tenant: Tenant, other: Tenant, tmp_path: Path
) -> None:
    """The import hands each batch's inserted rows to the hooks (computed traits, consent statements, time
    zones) instead of their reading them back: from a reader process, whose JSON columns arrive as text,
    the hooks see the same objects, and the outcome is the same as in one process."""
    from rapport.app import wire_runtime
    from rapport.collect.processor import BatchApplied, hooks_for

    wire_runtime(runtime)
    seen: list[BatchApplied] = []
    hooks_for(runtime).after_apply.append(seen.append)
    path = tmp_path / "events.jsonl"
    _hooked_events(path)
    states = []
    for workspace, pipeline in ((tenant, False), (other, True)):
        seen.clear()
        report = import_file(
            runtime,
            workspace_id=workspace.workspace_id,
            path=path,
            kind="events",
            batch_size=2,
            pipeline=pipeline,
        )
        assert (report.imported, report.failed) == (6, 0)
        stored = {e.message_id: e for e in events(runtime, workspace.workspace_id)}
        handed = [(row, pid) for batch in seen for row, pid in batch.linked or []]
        assert len(seen) == 3 and all(batch.linked is not None for batch in seen)
        assert sorted(i for b in seen for i in b.event_ids) == sorted(e.id for e in stored.values())
        assert stored["j1"].profile_id is None  # in event_ids, not among the linked events
        linked = sorted(e.id for e in stored.values() if e.profile_id is not None)
        assert sorted(row.id for row, _pid in handed) == linked and len(linked) == 5
        for row, pid in handed:
            event = next(e for e in stored.values() if e.id == row.id)
            assert (pid, row.event, row.timestamp) == (event.profile_id, event.event, event.timestamp)
            assert (row.properties, row.context, row.extra) == (event.properties, event.context, event.extra)
        states.append(_hooked_state(runtime, workspace.workspace_id))
    assert states[1] == states[0]
    h1, h2 = states[0]["h1"], states[0]["h2"]
    assert (h1[0]["total_orders"], h1[0]["total_spend"], h1[0]["favourite_category"]) == (2, 12.5, "toys")
    assert (h2[0]["total_orders"], h2[0]["total_spend"]) == (1, 20)
    assert h1[1] == "Europe/Paris" and h1[2] == [("email", "unsubscribed")] and h2[2] == []
