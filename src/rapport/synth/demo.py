"""Fill the demo workspace with synthetic customers, through the collect domain's bulk importer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from rapport.catalog import importer as catalog_importer
from rapport.collect import importer
from rapport.consent import rules as consent_rules
from rapport.consent import service as consent_service
from rapport.models import Identity, Workspace
from rapport.process import lifestyle as process_lifestyle
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
    consents: int
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
    catalog_importer.import_rows(runtime, workspace_id=workspace_id, rows=products())  # the product table
    n_profiles = n_events = failed = consents = 0
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
            consents += _record_consent(runtime, workspace_id, chunk.profiles)
            remaining = customers - n_profiles
            progress.update(e_task, completed=n_events, total=n_events + remaining * EVENTS_PER_CUSTOMER)
    # -- process (issue 4): the sample lifestyle overlay covering the demo's postcode areas -----------
    process_lifestyle.load_sample(runtime, workspace_id)
    return FillReport(n_profiles, n_events, failed, consents, time.perf_counter() - started, ref)


def _advance(progress: Progress, task: TaskID, base: int) -> Callable[[int], None]:
    return lambda done: progress.update(task, completed=base + done)


_CONSENT_ACTIONS = {
    consent_rules.SUBSCRIBED: consent_rules.GRANT,
    consent_rules.UNSUBSCRIBED: consent_rules.WITHDRAW,
}


def _record_consent(runtime: Runtime, workspace_id: int, profiles: list[dict[str, object]]) -> int:
    """Record the customers' email/SMS consent states through the consent domain; return the count."""
    user_ids = [str(p["user_id"]) for p in profiles]
    now = runtime.clock.now()
    n = 0
    with runtime.sessions() as db:
        found = db.execute(
            select(Identity.value, Identity.profile_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == "user_id",
                Identity.value.in_(user_ids),
            )
        )
        profile_ids: dict[str, int] = {value: pid for value, pid in found}
        for row in profiles:
            profile_id = profile_ids.get(str(row["user_id"]))
            if profile_id is None:
                continue
            for channel in ("email", "sms"):
                action = _CONSENT_ACTIONS.get(str(row[f"{channel}_consent"]))
                if action is None:  # never asked: no statement at all
                    continue
                statement = consent_service.Statement(
                    channel=channel, action=action, source="import", actor="demo",
                    wording="Synthetic demo customer", details={"signup_date": row["signup_date"]},
                )  # fmt: skip
                consent_service.record(
                    db, workspace_id=workspace_id, profile_id=profile_id, statement=statement, now=now
                )
                n += 1
        db.commit()
    return n


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
