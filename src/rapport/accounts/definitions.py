"""What a process builds from a workspace's definitions, kept while the definitions are unchanged.

The event processor reads, on every batch, things a marketer changes a few times a day at most: the
workspace's settings, its computed-trait definitions, its segments, the triggers of its active campaigns.
``workspaces.definitions_rev`` is bumped by database triggers whenever one of those rows changes (migration
0014 lists what counts), so a batch reads that one row and reuses what an earlier batch built under the same
number.

Example::

    revision = definitions.pin(db, workspace_id)          # the batch's transaction, once, at its start
    specs = definitions.cached(db, workspace_id, "process.stored_specs", lambda: load(db, workspace_id))

Only a transaction that pinned the workspace's revision uses the cache; any other gets ``build()`` afresh,
so the API and the jobs behave exactly as without it. A value built under a pinned revision is shared by
later transactions of the process: it must be immutable, or never changed by its users.

On PostgreSQL (read committed) a value may be built from rows newer than the pinned number (committed in
between): it is stored under the older number and rebuilt by the next batch, never the other way round.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from rapport.models import Workspace

T = TypeVar("T")

_PINNED = "rapport.definitions.pinned"
#: Values kept per engine (a test's database, a process's database), at most this many: a process serving
#: many workspaces rebuilds the values of the ones it has not seen for a while.
_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Revision:
    """A workspace's definitions as one transaction sees them: the counter and the workspace row's own
    settings. ``created_at`` tells a workspace from a deleted one whose id was given again (SQLite)."""

    workspace_id: int
    number: int
    created_at: datetime
    settings: dict[str, Any]
    default_region: str

    @property
    def key(self) -> tuple[int, datetime]:
        """What a kept value must have been built under."""
        return self.number, self.created_at


_caches: weakref.WeakKeyDictionary[Engine, dict[tuple[int, str], tuple[tuple[int, datetime], Any]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


_REVISION = select(
    Workspace.definitions_rev, Workspace.created_at, Workspace.settings, Workspace.default_region
).where(Workspace.id == bindparam("ws"))


def pin(db: Session, workspace_id: int) -> Revision:
    """Read the workspace's revision and settings for this transaction; from now on :func:`cached` reuses
    values built under the same revision (for this transaction's remaining statements too)."""
    row = db.execute(_REVISION, {"ws": workspace_id}).one()
    revision = Revision(
        workspace_id=workspace_id,
        number=int(row.definitions_rev),
        created_at=row.created_at,
        settings=row.settings if isinstance(row.settings, dict) else {},
        default_region=row.default_region,
    )
    transaction = db.get_transaction()
    held = db.info.get(_PINNED)
    if held is None or held[0] is not transaction:
        held = db.info[_PINNED] = (transaction, {})
    revisions: dict[int, Revision] = held[1]
    revisions[workspace_id] = revision
    return revision


def pinned(db: Session, workspace_id: int) -> Revision | None:
    """The revision this transaction pinned for the workspace, if it did."""
    held = db.info.get(_PINNED)
    if held is None or held[0] is not db.get_transaction():
        return None
    return cast(Revision | None, held[1].get(workspace_id))


def cached(db: Session, workspace_id: int, name: str, build: Callable[[], T]) -> T:
    """Return ``name``'s value for the workspace: kept from an earlier build under the revision this
    transaction pinned, else built now (and kept); without a pinned revision, always built now."""
    revision = pinned(db, workspace_id)
    if revision is None:
        return build()
    store = _store(db)
    held = store.get((workspace_id, name))
    if held is not None and held[0] == revision.key:
        return cast(T, held[1])
    value = build()
    if len(store) >= _LIMIT:
        store.clear()
    store[(workspace_id, name)] = (revision.key, value)
    return value


def _store(db: Session) -> dict[tuple[int, str], tuple[tuple[int, datetime], Any]]:
    bind = db.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    store = _caches.get(engine)
    if store is None:
        with _lock:
            store = _caches.setdefault(engine, {})
    return store
