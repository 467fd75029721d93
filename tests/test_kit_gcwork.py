"""bulk_gc raises the collector's thresholds for the block, once for nested uses, and puts them back."""

from __future__ import annotations

import gc

import pytest

from rapport.kit.gcwork import BULK_THRESHOLD, bulk_gc


def test_thresholds_are_raised_inside_and_restored_after_even_on_error() -> None:
    before = gc.get_threshold()
    assert before != BULK_THRESHOLD
    with bulk_gc():
        assert gc.get_threshold() == BULK_THRESHOLD
        with bulk_gc():
            assert gc.get_threshold() == BULK_THRESHOLD
        assert gc.get_threshold() == BULK_THRESHOLD  # the outer block is still running
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), bulk_gc():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before


def test_freeze_startup_heap_collects_then_moves_what_lives_out_of_full_collections() -> None:
    from rapport.kit.gcwork import freeze_startup_heap

    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.unfreeze()
    garbage = Node()  # a reference cycle: only the collector frees it
    gone = id(garbage)
    kept = [Node() for _ in range(100)]
    del garbage
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > len(kept)  # what lives (these and the rest of the process) is frozen
        alive = {id(o) for o in gc.get_objects() if type(o) is Node}
        assert gone not in alive  # the cycle was collected first
        in_gen2 = {id(o) for o in gc.get_objects(generation=2)}
        assert not in_gen2 & {id(o) for o in kept}  # full collections no longer walk them
    finally:
        gc.unfreeze()
