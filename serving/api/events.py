"""Events: what customers did, folded into their real-time view at once."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from serving.deps import OrchestratorDep, SettingsDep, StoreDep
from serving.schemas import EventIn, IngestPublic

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("")
def ingest_event(body: EventIn, _: OrchestratorDep, store: StoreDep) -> IngestPublic:
    """Apply one event to the customer's view (an event id seen before changes nothing)."""
    return IngestPublic.of(store.ingest_events([body.to_record()]), 1)


@router.post(
    "/batch",
    responses={status.HTTP_413_CONTENT_TOO_LARGE: {"description": "more events than batch_limit"}},
)
def ingest_events(
    body: list[EventIn], _: OrchestratorDep, store: StoreDep, settings: SettingsDep
) -> IngestPublic:
    """Apply a batch of events in one transaction, in time order, each event id once."""
    if len(body) > settings.batch_limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{len(body)} events; at most {settings.batch_limit} per batch",
        )
    return IngestPublic.of(store.ingest_events([e.to_record() for e in body]), len(body))
