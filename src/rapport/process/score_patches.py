"""Per-profile JSON merge-patches of the profiles' scores (``ProfileScores.scores``) built from score columns,
without a dict per profile.

A column is a key, its values for every profile and a state per profile: ``KEEP`` (leave the stored value
alone), ``SET`` or ``REMOVE`` (a JSON null, which a merge-patch reads as "delete the key"). Rows sharing the
same states share one ``%``-template, so a million patches cost one string format each.

Each patch also comes with the keys it removes (one shared tuple per template), so a database without a
merge-patch function (PostgreSQL) can drop them with ``computed - keys`` instead of scanning every patch.

Example::

    cols = [Column.numbers("rfm_r", r), Column.names("rfm_segment", codes, SEGMENT_NAMES)]
    chunk = build_patches(profile_ids, cols, 0, len(profile_ids))   # chunk.ids, .patches, .removed
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

KEEP, SET, REMOVE = 0, 1, 2


@dataclass(frozen=True)
class Column:
    """One key of the patch: values (numbers, or JSON literals as strings) and a state per profile."""

    key: str
    values: NDArray[np.generic]
    state: NDArray[np.int8]

    @staticmethod
    def numbers(
        key: str, values: ArrayLike, *, digits: int | None = None, state: ArrayLike | None = None
    ) -> Column:
        """A numeric column (rounded to ``digits`` when given); non-finite values are kept, never written."""
        v = np.asarray(values)
        if digits is not None:
            v = np.round(v.astype(np.float64), digits)
        st = (
            np.full(v.shape, SET, dtype=np.int8) if state is None else np.asarray(state, dtype=np.int8).copy()
        )
        if np.issubdtype(v.dtype, np.floating):
            st[(st == SET) & ~np.isfinite(v)] = KEEP
        return Column(key, v, st)

    @staticmethod
    def names(key: str, codes: ArrayLike, names: Sequence[str], *, state: ArrayLike | None = None) -> Column:
        """A text column given as codes into ``names``."""
        literals = np.asarray([json.dumps(n) for n in names], dtype=object)
        c = np.asarray(codes, dtype=np.int64)
        st = np.full(c.shape, SET, dtype=np.int8) if state is None else np.asarray(state, dtype=np.int8)
        return Column(key, literals[np.where(st == SET, c, 0)], st)


@dataclass(frozen=True)
class Patches:
    """Rows to change: profile ids, their JSON merge-patches, and the keys each patch removes (its nulls)."""

    ids: list[int]
    patches: list[str]
    removed: list[tuple[str, ...]]


def _template(columns: Sequence[Column], states: Sequence[int]) -> str:
    parts = []
    for col, st in zip(columns, states, strict=True):
        key = json.dumps(col.key).replace("%", "%%")
        if st == SET:
            parts.append(f"{key}:%s")
        elif st == REMOVE:
            parts.append(f"{key}:null")
    return "{" + ",".join(parts) + "}"


def build_patches(ids: NDArray[np.int64], columns: Sequence[Column], start: int, stop: int) -> Patches:
    """Return the ids, JSON patches and removed keys of rows ``start:stop``; rows with nothing to change are
    left out."""
    n = stop - start
    if n <= 0 or not columns:
        return Patches([], [], [])
    states = np.stack([c.state[start:stop] for c in columns])
    weights = 3 ** np.arange(len(columns), dtype=np.int64)
    pattern = (states.astype(np.int64) * weights[:, None]).sum(axis=0)
    out = np.empty(n, dtype=object)
    removed = np.empty(n, dtype=object)
    changed = pattern != 0
    for code in np.unique(pattern[changed]):
        rows = np.flatnonzero(pattern == code)
        row_states = states[:, rows[0]].tolist()
        template = _template(columns, row_states)
        gone = np.empty(1, dtype=object)  # one shared tuple, broadcast (a bare tuple would be unpacked)
        gone[0] = tuple(c.key for c, s in zip(columns, row_states, strict=True) if s == REMOVE)
        removed[rows] = gone
        picked = [
            c.values[start:stop][rows].tolist() for c, s in zip(columns, row_states, strict=True) if s == SET
        ]
        if picked:
            out[rows] = [template % values for values in zip(*picked, strict=True)]
        else:
            out[rows] = template
    keep = np.flatnonzero(changed)
    return Patches(ids[start:stop][keep].tolist(), out[keep].tolist(), removed[keep].tolist())
