"""The processor hands its hooks the batch's linked events: the same views the fold would read back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rapport.collect.processor import BatchApplied, Processor, hooks_for
from rapport.process import repository as process_repository
from rapport.process import traits_service
from rapport.process.computed import EventView
from rapport.runtime import Runtime
from tests.collect.processing_support import append, at
from tests.support.tenants import Tenant


def test_linked_events_match_what_the_database_holds(runtime: Runtime, tenant: Tenant) -> None:
    seen: list[list[EventView]] = []

    def compare(batch: BatchApplied) -> None:
        assert batch.linked is not None  # no merge in these batches
        for names in (None, {"Order Completed"}):
            mine = traits_service._batch_events(batch, names=names, with_context=True)
            read = process_repository.events_by_id(
                batch.db, batch.workspace_id, batch.event_ids, names=names, with_context=True
            )
            assert mine == read
            seen.append(mine)
        bare = traits_service._batch_events(batch, names=None, with_context=False)
        assert all(view.context == {} for view in bare)

    hooks_for(runtime).after_apply.append(compare)
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "track", "userId": "u1", "event": "Order Completed", "timestamp": at(2),
         "properties": {"revenue": 12.5, "store_id": "s1"}, "context": {"channel": "store", "timezone": "Europe/Paris"}},
        {"type": "identify", "userId": "u2", "traits": {"plan": "pro"}, "timestamp": at(1)},
        {"type": "page", "anonymousId": "a9", "name": "Home", "timestamp": at(3), "context": {"page": {"path": "/"}}},
        {"type": "track", "userId": "u1", "event": "Viewed", "timestamp": at(4)},
    )  # fmt: skip
    assert Processor(runtime, batch_size=50).drain() == 4
    assert len(seen) == 2
    everything, orders = seen
    assert [view.event for view in everything] == ["Order Completed", None, "Home", "Viewed"]
    assert len(orders) == 1 and orders[0].properties == {"revenue": 12.5, "store_id": "s1"}


def test_linked_rows_carry_extra_and_source_and_give_the_timezone_hook_the_stored_contexts(
    runtime: Runtime, tenant: Tenant
) -> None:
    """The consent hook reads ``extra`` and ``source`` and the timezone hook the contexts from the linked
    rows instead of reading the events back: both must be what the database holds."""
    from dataclasses import replace

    from sqlalchemy import select

    from rapport.models import Event
    from rapport.process import timezone

    checked: list[int] = []

    def compare(batch: BatchApplied) -> None:
        assert batch.linked is not None
        stored = {
            r.id: r
            for r in batch.db.execute(
                select(Event.id, Event.profile_id, Event.extra, Event.source).where(
                    Event.id.in_(batch.event_ids)
                )
            )
        }
        for row, pid in batch.linked:
            assert (row.extra, row.source, pid) == (
                stored[row.id].extra,
                stored[row.id].source,
                stored[row.id].profile_id,
            )
            checked.append(row.id)
        assert timezone._batch_contexts(batch) == timezone._batch_contexts(replace(batch, linked=None))
        assert batch.workspace_settings is not None

    hooks_for(runtime).after_apply.append(compare)
    ws = tenant.workspace_id
    append(
        runtime,
        ws,
        {"type": "track", "userId": "u1", "event": "Viewed", "timestamp": at(3),
         "context": {"timezone": "Europe/Paris", "location": {"latitude": 53.8, "longitude": -1.55}}},
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "timestamp": at(1),
         "context": {"timezone": "Europe/London"}},
        {"type": "track", "userId": "u2", "event": "Viewed", "timestamp": at(2)},
    )  # fmt: skip
    assert Processor(runtime, batch_size=50).drain() == 3
    assert len(checked) == 3


_BEFORE = (
    {
        "type": "track",
        "userId": "u1",
        "event": "Viewed",
        "timestamp": at(1),
        "context": {"timezone": "Europe/Paris"},
    },
    {"type": "identify", "anonymousId": "a2", "traits": {"email": "x@y.io"}, "timestamp": at(2)},
    {
        "type": "track",
        "anonymousId": "a2",
        "event": "Order Completed",
        "timestamp": at(3),
        "properties": {"total": 5},
        "context": {"timezone": "Asia/Tokyo"},
    },
)
_MERGING = (
    {"type": "identify", "userId": "u1", "traits": {"email": "x@y.io"}, "timestamp": at(4)},  # merges the two
    {"type": "track", "anonymousId": "a2", "event": "Order Completed", "timestamp": at(5),
     "properties": {"total": 7}},
    {"type": "track", "userId": "u1", "event": "Viewed", "timestamp": at(6)},
)  # fmt: skip


def _check_against_the_database(checked: list[BatchApplied]) -> Callable[[BatchApplied], None]:
    from dataclasses import replace

    from sqlalchemy import select

    from rapport.models import Event
    from rapport.process import timezone

    def compare(batch: BatchApplied) -> None:
        if not batch.merges:
            return
        assert batch.linked is not None  # a merge's batch hands its rows over too
        stored = dict(
            batch.db.execute(select(Event.id, Event.profile_id).where(Event.id.in_(batch.event_ids))).all()
        )
        assert {row.id: pid for row, pid in batch.linked} == stored  # the survivor, as stored
        for names in (None, {"Order Completed"}):
            assert traits_service._batch_events(
                batch, names=names, with_context=True
            ) == process_repository.events_by_id(
                batch.db, batch.workspace_id, batch.event_ids, names=names, with_context=True
            )
        assert timezone._batch_contexts(batch) == timezone._batch_contexts(replace(batch, linked=None))
        checked.append(batch)

    return compare


@pytest.mark.parametrize("edge", ["processor", "import"])
def test_a_batch_that_merges_hands_its_rows_with_the_survivors_id(
    runtime: Runtime, tenant: Tenant, edge: str
) -> None:
    """A merge re-points the merged-away profile's events to the survivor; the resolution's profile ids
    already follow merges, so the rows handed over say what the database says, and the survivor's
    computed traits count every order once."""
    from rapport.app import wire_runtime
    from rapport.collect.importer import import_event_rows
    from tests.collect.processing_support import live_profiles

    wire_runtime(runtime)
    checked: list[BatchApplied] = []
    hooks_for(runtime).after_apply.append(_check_against_the_database(checked))
    ws = tenant.workspace_id
    for rows in (_BEFORE, _MERGING):
        if edge == "processor":
            append(runtime, ws, *rows)
            assert Processor(runtime, batch_size=50).drain() == len(rows)
        else:
            assert import_event_rows(runtime, workspace_id=ws, rows=list(rows)).failed == 0
    assert len(checked) == 1
    (survivor,) = live_profiles(runtime, ws)
    assert (survivor.computed["total_orders"], survivor.computed["total_spend"]) == (2, 12)
