"""The composition root: ``create_app(settings)`` wires storage, routers, channels and the worker."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from rapport import __version__
from rapport.accounts import api as accounts_api
from rapport.api import health
from rapport.api.deps import ids_in_range
from rapport.api.errors import install_error_handlers
from rapport.api.middleware import RequestIdMiddleware
from rapport.campaigns import api as campaigns_api
from rapport.campaigns import tasks as campaigns_tasks
from rapport.catalog import api as catalog_api
from rapport.collect import api as collect_api
from rapport.collect import import_api, import_tasks
from rapport.collect import quarantine as collect_quarantine
from rapport.collect.processor import Processor, hooks_for
from rapport.config import Settings
from rapport.consent import api as consent_api
from rapport.consent import hooks as consent_hooks
from rapport.consent import web as consent_web
from rapport.content import api as content_api
from rapport.messaging import api as messaging_api
from rapport.messaging import inapp, inbound, push_api, render_pool, tracking
from rapport.messaging import setup as messaging_setup
from rapport.messaging.delivery import Deliverer
from rapport.process import api as process_api
from rapport.process import hooks as process_hooks
from rapport.process import tasks as process_tasks
from rapport.profiles import api as profiles_api
from rapport.runtime import Runtime, build_runtime
from rapport.segments import api as segments_api
from rapport.segments import realtime as segments_realtime
from rapport.segments import score_refresh as segments_score_refresh
from rapport.web import error_pages as web_error_pages
from rapport.web import mount as web_mount
from rapport.worker.runner import HandlerRegistry, Worker

log = logging.getLogger("rapport.app")


def wire_runtime(runtime: Runtime) -> Runtime:
    """Register every domain's processing hooks on ``runtime`` (once); every edge that processes data
    (the app, ``rapport worker``, CLI imports) wires its runtime through here."""
    if runtime.ports.get("wired"):
        return runtime
    hooks = hooks_for(runtime)
    consent_hooks.register(hooks)
    process_hooks.register(hooks)
    segments_realtime.register(hooks)  # after process: computed traits first
    campaigns_tasks.register(hooks, runtime)  # after segments: entries and exits trigger campaigns
    hooks.exporters["messages"] = messaging_setup.export_messages
    messaging_setup.register_channels(runtime)
    runtime.ports["wired"] = True
    return runtime


#: What a worker process runs (``rapport worker --role``): ``events``, the event processor; ``delivery``,
#: the outbox deliverer; ``jobs``, queued jobs and the clock-driven ticks (campaign schedules, segment
#: refreshes, the nightly scores). Production may run each in processes of its own, scaled apart.
WORKER_ROLES = ("events", "delivery", "jobs")


def parse_roles(values: Iterable[str]) -> frozenset[str]:
    """Return the roles named in ``values`` (each may hold several, separated by commas or spaces); raises
    ValueError for an unknown one or none at all."""
    roles = frozenset(part for value in values for part in value.replace(",", " ").split())
    unknown = sorted(roles - set(WORKER_ROLES))
    if unknown:
        raise ValueError(f"unknown worker role {', '.join(unknown)} (roles: {', '.join(WORKER_ROLES)})")
    if not roles:
        raise ValueError(f"name at least one worker role ({', '.join(WORKER_ROLES)})")
    return roles


def build_worker(runtime: Runtime, roles: Iterable[str] = WORKER_ROLES) -> Worker:
    """Return the worker with the job handlers and ticks of ``roles`` (all of them by default)."""
    chosen = parse_roles(roles)
    wire_runtime(runtime)
    jobs = "jobs" in chosen
    worker = Worker(runtime, build_registry(runtime) if jobs else HandlerRegistry(), jobs=jobs)
    deliverer = build_deliverer(runtime, worker_id=worker.worker_id) if "delivery" in chosen else None
    if "events" in chosen:
        # with both roles, a batch's triggered messages go to this deliverer straight from the batch's
        # transaction (Deliverer.adopt) instead of waiting for its next claim (Settings.delivery_handoff)
        handoff = deliverer if runtime.settings.delivery_handoff else None
        worker.add_tick(Processor(runtime, handoff=handoff).tick)
    if deliverer is not None:
        worker.add_tick(deliverer.tick)
    if jobs:
        worker.add_tick(segments_realtime.RefreshTick(runtime))
        worker.add_tick(campaigns_tasks.CampaignTick(runtime))
        worker.add_tick(process_tasks.NightlyScheduler(runtime).tick)
    return worker


def build_deliverer(runtime: Runtime, *, worker_id: str) -> Deliverer:
    """The outbox deliverer as a worker runs it: with its render helpers (``Settings.render_processes``)."""
    helpers = render_pool.resolve_processes(runtime.settings.render_processes)
    return Deliverer(runtime, worker_id=worker_id, render_processes=helpers)


def build_registry(runtime: Runtime) -> HandlerRegistry:
    """Register every domain's background job handlers."""
    registry = HandlerRegistry()
    registry.register(import_tasks.JOB_KIND, import_tasks.run_import)
    consent_hooks.register_jobs(registry)  # consent.send_confirmation (double opt-in)
    process_tasks.register(registry)
    segments_score_refresh.register_jobs(registry)  # segments on scores follow a score run
    return registry


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    start_worker: bool | None = None,
) -> FastAPI:
    """Build the FastAPI application; nothing connects until the first request or the worker starts."""
    settings = settings or (runtime.settings if runtime else Settings())
    runtime = runtime or build_runtime(settings)
    run_worker = settings.run_worker_in_process if start_worker is None else start_worker
    worker = build_worker(runtime)
    registry = worker.registry

    ingest = collect_api.build_ingest(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ingest.start()
        if run_worker:
            worker.start_thread()
        try:
            yield
        finally:
            if run_worker:
                worker.stop_thread()
            await ingest.stop()

    app = FastAPI(
        title="Rapport",
        version=__version__,
        description="Customer engagement platform: Segment-compatible collection, profiles, segments, "
        "messaging. Secret keys: `Authorization: Bearer sk_…`. Write keys: HTTP Basic username.",
        lifespan=lifespan,
        dependencies=[Depends(ids_in_range)],  # an id past 64 bits is a 404 on every route, not a 500
    )
    app.state.runtime = runtime
    app.state.worker = worker
    app.state.registry = registry
    app.state.ingest = ingest
    install_error_handlers(app, page=web_error_pages.error_page)  # UI page requests get HTML pages
    app.add_middleware(collect_api.IngestFastPath)  # inside RequestIdMiddleware: the /v1 hot path
    app.add_middleware(RequestIdMiddleware)
    app.include_router(collect_api.router)  # first: the hot path should not be matched against every route
    app.include_router(health.router)
    app.include_router(accounts_api.router)
    app.include_router(collect_quarantine.router)
    app.include_router(profiles_api.router)
    app.include_router(import_api.router)
    app.include_router(consent_api.router)
    app.include_router(consent_web.router)
    app.include_router(messaging_api.router)
    app.include_router(segments_api.router)
    app.include_router(campaigns_api.router)
    app.include_router(content_api.router)
    app.include_router(process_api.router)
    app.include_router(catalog_api.router)
    for router in (tracking.router, inbound.router, push_api.router, inapp.router):  # issue 6 routes
        app.include_router(router)
    web_mount.mount(app, runtime)
    return app
