"""Fill the demo workspace with synthetic customers, through the collect domain's bulk importer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from rapport.collect import importer
from rapport.models import Workspace
from rapport.runtime import Runtime
from rapport.synth import catalogue
from rapport.synth.generator import SynthSpec, iter_chunks, products, stores

#: Customers per generated chunk: one profile import and one event import each.
CHUNK = 1000
#: Rough messages per customer, for the progress bar's total before the real count is known.
EVENTS_PER_CUSTOMER = 11


@dataclass(frozen=True)
class FillReport:
    """What ``fill_workspace`` loaded."""

    profiles: int
    events: int
    failed: int
    seconds: float
    reference_date: datetime


def demo_reference_date(now: datetime) -> datetime:
    """Return the end of the demo's year of activity: the start of the next UTC day, so it ends "now"."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def fill_workspace(
    runtime: Runtime,
    *,
    workspace_id: int,
    customers: int,
    seed: int,
    reference_date: datetime | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> FillReport:
    """Generate ``customers`` synthetic customers with a year of events into the workspace.

    The same seed and reference date give the same data; the reference date defaults to the end of today
    (UTC) so the demo's activity is recent. Stores, products and the retailer's name go to the workspace
    settings (there is no table for them yet).
    """
    ref = reference_date or demo_reference_date(runtime.clock.now())
    spec = SynthSpec(profiles=customers, seed=seed, reference_date=ref, chunk_size=CHUNK)
    started = time.perf_counter()
    _store_catalogue(runtime, workspace_id)
    n_profiles = n_events = failed = 0
    progress = Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress,
    )
    with progress:
        p_task = progress.add_task("Customers", total=customers)
        e_task = progress.add_task("Events", total=customers * EVENTS_PER_CUSTOMER)
        for chunk in iter_chunks(spec):
            base_p, base_e = n_profiles, n_events
            report = importer.import_profile_rows(
                runtime,
                workspace_id=workspace_id,
                rows=chunk.profiles,
                progress=_advance(progress, p_task, base_p),
            )
            failed += report.failed
            n_profiles += len(chunk.profiles)
            report = importer.import_event_rows(
                runtime,
                workspace_id=workspace_id,
                rows=chunk.events,
                progress=_advance(progress, e_task, base_e),
            )
            failed += report.failed
            n_events += len(chunk.events)
            remaining = customers - n_profiles
            progress.update(e_task, completed=n_events, total=n_events + remaining * EVENTS_PER_CUSTOMER)
    return FillReport(n_profiles, n_events, failed, time.perf_counter() - started, ref)


def _advance(progress: Progress, task: TaskID, base: int) -> Callable[[int], None]:
    return lambda done: progress.update(task, completed=base + done)


def _store_catalogue(runtime: Runtime, workspace_id: int) -> None:
    with runtime.sessions() as db:
        workspace = db.get(Workspace, workspace_id)
        if workspace is None:
            raise ValueError(f"no workspace {workspace_id}")
        workspace.settings = {
            **(workspace.settings or {}),
            "retailer": catalogue.RETAILER,
            "stores": stores(),
            "products": products(),
            "product_categories": list(catalogue.CATEGORIES),
        }
        db.commit()
