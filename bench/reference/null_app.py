"""The B1/B2 reference: a FastAPI POST handler that only keeps the raw body (run on one uvicorn worker)."""

from __future__ import annotations

from collections import deque

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

#: The last bodies received (bounded so a long run cannot exhaust memory).
KEPT: deque[bytes] = deque(maxlen=10_000)

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


async def _keep(request: Request) -> JSONResponse:
    KEPT.append(await request.body())
    return JSONResponse({"success": True})


app.add_api_route("/v1/track", _keep, methods=["POST"])
app.add_api_route("/v1/batch", _keep, methods=["POST"])
