"""Liveness, readiness and Prometheus metrics (open: no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy.exc import SQLAlchemyError

from decisioning.errors import DecisioningError, NotFound
from serving.deps import EngineDep, MetricsDep, StoreDep
from serving.metrics import CONTENT_TYPE_LATEST
from serving.schemas import HealthPublic, ReadyPublic

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> HealthPublic:
    """Liveness: the process answers."""
    return HealthPublic(status="ok")


@router.get(
    "/ready",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ReadyPublic}},
)
def ready(store: StoreDep, engine: EngineDep, response: Response) -> ReadyPublic:
    """Readiness: the store answers and every active objective loads into the engine."""
    where = store.dialect
    try:
        docs = store.list_objectives()
        active = [doc["id"] for doc in docs if doc.get("status") == "active"]
        for objective_id in active:
            try:
                engine.objective(objective_id)
            except NotFound:  # stored after the engine's last load: it loads within its TTL
                continue
    except (SQLAlchemyError, DecisioningError, ValueError, OSError) as exc:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return ReadyPublic(
            ready=False,
            store=where,
            objectives=0,
            active_objectives=0,
            detail=f"{type(exc).__name__}: {exc}",
        )
    return ReadyPublic(ready=True, store=where, objectives=len(docs), active_objectives=len(active))


@router.get("/metrics", response_class=Response)
def metrics(registry: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency per route, decisions, fallbacks."""
    return Response(registry.exposition(), media_type=CONTENT_TYPE_LATEST)
