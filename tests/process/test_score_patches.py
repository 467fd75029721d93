"""Score columns to JSON merge-patches: exact text, states (keep / set / remove), odd keys."""

from __future__ import annotations

import json

import numpy as np

from rapport.process.score_patches import KEEP, REMOVE, SET, Column, Patches, build_patches


def test_patches_carry_set_and_removed_keys_and_skip_untouched_rows() -> None:
    ids = np.array([10, 11, 12, 13], dtype=np.int64)
    columns = [
        Column.numbers("r", np.array([5, 1, 0, 3], dtype=np.int8)),
        Column.numbers("clv", [12.346, 0.0, 7.0, 1.0], digits=2, state=[SET, REMOVE, SET, KEEP]),
        Column.names("band", [1, 0, 2, 0], ["low", "medium", "high"], state=[SET, REMOVE, KEEP, KEEP]),
    ]
    chunk = build_patches(ids, columns, 0, 4)
    assert chunk.ids == [10, 11, 12, 13]
    assert [json.loads(p) for p in chunk.patches] == [
        {"r": 5, "clv": 12.35, "band": "medium"},
        {"r": 1, "clv": None, "band": None},
        {"r": 0, "clv": 7.0},
        {"r": 3},
    ]
    # the removed keys are the patch's nulls, in column order
    assert chunk.removed == [(), ("clv", "band"), (), ()]
    # a slice, and a row where nothing changes is left out
    only_keep = [Column.numbers("x", [1.0, 2.0], state=[KEEP, SET])]
    assert build_patches(np.array([1, 2]), only_keep, 0, 2) == Patches([2], ['{"x":2.0}'], [()])
    assert build_patches(ids, columns, 2, 4).ids == [12, 13]


def test_non_finite_numbers_are_never_written_and_keys_are_escaped() -> None:
    columns = [
        Column.numbers("p", [np.nan, np.inf, 0.25]),
        Column.numbers('odd "100%" key', [1, 2, 3]),
    ]
    patches = build_patches(np.array([1, 2, 3]), columns, 0, 3).patches
    assert [json.loads(p) for p in patches] == [
        {'odd "100%" key': 1},
        {'odd "100%" key': 2},
        {"p": 0.25, 'odd "100%" key': 3},
    ]


def test_removed_keys_match_the_nulls_of_every_patch() -> None:
    rng = np.random.default_rng(3)
    n = 500
    columns = [Column.numbers(f"k{i}", rng.random(n), state=rng.integers(0, 3, n)) for i in range(4)] + [
        Column.names('q"\\', rng.integers(0, 2, n), ["a", "b"], state=rng.integers(0, 3, n))
    ]
    chunk = build_patches(np.arange(n, dtype=np.int64), columns, 0, n)
    assert len(chunk.ids) == len(chunk.patches) == len(chunk.removed) > 0
    for patch, removed in zip(chunk.patches, chunk.removed, strict=True):
        assert removed == tuple(k for k, v in json.loads(patch).items() if v is None)
