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
