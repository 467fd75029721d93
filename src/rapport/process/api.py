"""HTTP routes of processing: /api/v1/computed-traits, /api/v1/scores, /api/v1/lifestyle-tables."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from rapport.accounts.principal import Principal
from rapport.api import idempotency
from rapport.api.deps import DbSession, ReadDbSession, get_runtime, require_scope
from rapport.errors import NotFound, ValidationFailed
from rapport.models import ScoreRun
from rapport.process import lifestyle, scores_service, tasks, traits_service
from rapport.process.schemas import (
    ComputedTraitCreate,
    ComputedTraitRead,
    ComputedTraitUpdate,
    LifestyleTableRead,
    ScoreRunRead,
    ScoreRunRequest,
)
from rapport.runtime import Runtime
from rapport.worker import queue

router = APIRouter(prefix="/api/v1", tags=["process"])

Reader = Annotated[Principal, Depends(require_scope("profiles:read"))]
Admin = Annotated[Principal, Depends(require_scope("settings:write"))]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
MAX_TABLE_BYTES = 20 * 1024 * 1024


@router.get("/computed-traits", response_model=list[ComputedTraitRead])
def list_computed_traits(principal: Reader, db: DbSession, runtime: RuntimeDep) -> object:
    """List the workspace's computed traits (built-ins are created on first use)."""
    if traits_service.ensure_builtins(db, workspace_id=principal.workspace_id, now=runtime.clock.now()):
        db.commit()
    return traits_service.list_definitions(db, workspace_id=principal.workspace_id)


@router.post("/computed-traits", response_model=ComputedTraitRead, status_code=201)
def create_computed_trait(
    body: ComputedTraitCreate, principal: Admin, db: DbSession, runtime: RuntimeDep
) -> object:
    """Define a computed trait; its backfill runs as a background job."""
    row = traits_service.create_definition(
        db,
        workspace_id=principal.workspace_id,
        name=body.name,
        event=body.event,
        aggregation=body.aggregation,
        property=body.property,
        conditions=[c.model_dump() for c in body.conditions],
        window_days=body.window_days,
        description=body.description,
        now=runtime.clock.now(),
    )
    db.commit()
    return row


@router.get("/computed-traits/{trait_id}", response_model=ComputedTraitRead)
def get_computed_trait(trait_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one computed trait."""
    return traits_service.get_definition(db, workspace_id=principal.workspace_id, trait_id=trait_id)


@router.patch("/computed-traits/{trait_id}", response_model=ComputedTraitRead)
def update_computed_trait(
    trait_id: int, body: ComputedTraitUpdate, principal: Admin, db: DbSession, runtime: RuntimeDep
) -> object:
    """Change a computed trait; a change of what it computes re-runs its backfill."""
    changes = body.model_dump(exclude_unset=True)
    if "conditions" in changes and changes["conditions"] is not None:
        changes["conditions"] = [dict(c) for c in changes["conditions"]]
    row = traits_service.update_definition(
        db, workspace_id=principal.workspace_id, trait_id=trait_id, changes=changes, now=runtime.clock.now()
    )
    db.commit()
    return row


@router.delete("/computed-traits/{trait_id}", response_model=ComputedTraitRead)
def archive_computed_trait(trait_id: int, principal: Admin, db: DbSession, runtime: RuntimeDep) -> object:
    """Archive a computed trait; its stored values are removed in the background."""
    row = traits_service.archive_definition(
        db, workspace_id=principal.workspace_id, trait_id=trait_id, now=runtime.clock.now()
    )
    db.commit()
    return row


@router.post("/scores/run", status_code=202)
def run_scores(body: ScoreRunRequest, principal: Admin, db: DbSession, request: Request) -> JSONResponse:
    """Queue a score run now (send an Idempotency-Key to make retries safe); returns the job id."""
    runtime = get_runtime(request)

    def effect() -> tuple[int, dict[str, Any]]:
        job_id = queue.enqueue(
            db,
            kind=tasks.SCORES_JOB,
            workspace_id=principal.workspace_id,
            payload={"kinds": list(body.kinds)},
            max_attempts=3,
            now=runtime.clock.now(),
        )
        return 202, {"job_id": job_id, "kinds": list(body.kinds)}

    return idempotency.run(
        request, db, workspace_id=principal.workspace_id, body=body.model_dump(mode="json"), effect=effect
    )


@router.get("/scores/runs", response_model=list[ScoreRunRead])
def list_score_runs(
    principal: Reader,
    db: ReadDbSession,
    kind: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> object:
    """List score runs, newest first."""
    return scores_service.list_runs(db, workspace_id=principal.workspace_id, kind=kind, limit=limit)


@router.get("/scores/runs/{run_id}", response_model=ScoreRunRead)
def get_score_run(run_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one score run."""
    run = db.get(ScoreRun, run_id)
    if run is None or run.workspace_id != principal.workspace_id:
        raise NotFound("no such score run")
    return run


@router.post("/lifestyle-tables", response_model=LifestyleTableRead, status_code=201)
def upload_lifestyle_table(
    principal: Admin,
    db: DbSession,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form()],
) -> object:
    """Upload (or replace) a lifestyle table as CSV: a key column and any value columns."""
    data = file.file.read(MAX_TABLE_BYTES + 1)
    if len(data) > MAX_TABLE_BYTES:
        raise ValidationFailed("the table is larger than 20 MB")
    table = lifestyle.save_table(
        db, workspace_id=principal.workspace_id, name=name, data=data, now=runtime.clock.now()
    )
    db.commit()
    return table


@router.get("/lifestyle-tables", response_model=list[LifestyleTableRead])
def list_lifestyle_tables(principal: Reader, db: ReadDbSession) -> object:
    """List the workspace's lifestyle tables."""
    return lifestyle.list_tables(db, workspace_id=principal.workspace_id)


@router.get("/lifestyle-tables/{table_id}", response_model=LifestyleTableRead)
def get_lifestyle_table(table_id: int, principal: Reader, db: ReadDbSession) -> object:
    """Return one lifestyle table."""
    return lifestyle.get_table(db, workspace_id=principal.workspace_id, table_id=table_id)


@router.delete("/lifestyle-tables/{table_id}", status_code=204)
def delete_lifestyle_table(table_id: int, principal: Admin, db: DbSession, runtime: RuntimeDep) -> None:
    """Delete a lifestyle table; profiles are re-matched against the remaining ones in the background."""
    lifestyle.delete_table(
        db, workspace_id=principal.workspace_id, table_id=table_id, now=runtime.clock.now()
    )
    db.commit()
