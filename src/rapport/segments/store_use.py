"""Which saved segments place customers by a store (``within 5 km of store "Leeds"``), so that replacing the
store list cannot silently break them: a segment naming a store the list no longer has fails to compile
(``unknown store``) on its next refresh, and so does every campaign aimed at it.

The stores live in the catalogue (``rapport.catalog.stores``), below the segments; this check sits here, above
both, and the edges that replace stores (UI, API, CLI) call it before they do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from rapport.errors import Conflict
from rapport.segments import codec
from rapport.segments.ast import Store, Within, walk
from rapport.segments.errors import SegmentError
from rapport.segments.repository import list_segments


def segments_by_store(db: Session, *, workspace_id: int) -> dict[str, list[str]]:
    """Return ``{store name: [segment names]}`` for the workspace's live segments that name a store."""
    used: dict[str, list[str]] = {}
    for segment in list_segments(db, workspace_id=workspace_id):
        try:
            tree = codec.from_json(segment.ast)
        except SegmentError:  # a definition that no longer decodes names no store we can check
            continue
        names = {n.target.name for n in walk(tree) if isinstance(n, Within) and isinstance(n.target, Store)}
        for name in sorted(names):
            used.setdefault(name, []).append(segment.name)
    return used


def check_stores_kept(db: Session, stores: Iterable[Mapping[str, Any]], *, workspace_id: int) -> None:
    """Raise ``Conflict`` (409) when the new store list drops a store a live segment places customers by;
    the message names the stores and the segments, ``details`` lists them."""
    kept = {s.get("name") for s in stores}
    dropped = {
        name: segments
        for name, segments in segments_by_store(db, workspace_id=workspace_id).items()
        if name not in kept
    }
    if not dropped:
        return
    described = "; ".join(f"{name!r} (segments: {', '.join(segs)})" for name, segs in sorted(dropped.items()))
    raise Conflict(
        f"the new list drops stores that segments use: {described}. Keep those stores in the list, or change "
        "the segments first",
        code="stores_in_use",
        details=[{"store": name, "segments": segs} for name, segs in sorted(dropped.items())],
    )
