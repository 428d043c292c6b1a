"""Decisions: one customer, a batch streamed as JSON lines, send-time confirmation, outcomes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Request, status
from fastapi.responses import Response, StreamingResponse

from decisioning.decision import Decision
from decisioning.errors import Conflict
from serving.deps import (
    EngineDep,
    MetricsDep,
    OrchestratorDep,
    Service,
    SettingsDep,
    StoreDep,
    get_service_of,
)
from serving.metrics import Metrics
from serving.schemas import (
    BatchDecisionRequest,
    ConfirmIn,
    ConfirmPublic,
    DecisionPublic,
    DecisionRequest,
    LoggedDecisionPublic,
    OutcomeIn,
    OutcomePublic,
    decision_json,
)

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])

DecisionId = Annotated[str, Path(min_length=1, max_length=200, description="the decision's id")]
NDJSON = "application/x-ndjson"
JSON = "application/json"


@router.post("", response_model=DecisionPublic)
async def decide(body: DecisionRequest, _: OrchestratorDep, request: Request) -> Response:
    """Decide what to do for one customer now: a channel and a send time, or nothing."""
    # Decided on the event loop: a decision reads the hot store in memory and queues its log
    # entry, well under a millisecond of CPU that a thread-pool hop would only add to. The
    # engine and metrics are read off the app rather than solved as dependencies per request.
    # Most calls never get here: serving.decision_lane answers them with the same two steps.
    service = get_service_of(request)
    decision = decide_one(service, body)
    service.metrics.record([decision])
    return Response(decision_json(decision), media_type=JSON)


def decide_one(service: Service, body: DecisionRequest) -> Decision:
    """The logged decision a ``POST /v1/decisions`` body asks for."""
    return service.engine.decide(
        body.customer_id, objective_id=body.objective, request=body.context, as_of=body.as_of
    )


def decide_together(service: Service, bodies: Sequence[DecisionRequest]) -> list[Decision]:
    """The logged decisions of ``POST /v1/decisions`` bodies for distinct customers that share
    an objective and ``as_of``, taken as one chunk (see :mod:`serving.micro_batch`)."""
    first = bodies[0]
    return service.engine.decide_each(
        [(body.customer_id, body.context) for body in bodies],
        objective_id=first.objective,
        as_of=first.as_of,
    )


@router.post(
    "/batch",
    response_class=StreamingResponse,
    responses={
        status.HTTP_200_OK: {
            "description": "one decision (as in POST /v1/decisions) per line",
            "content": {NDJSON: {"schema": {"type": "string"}}},
        },
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "more customers than batch_limit"},
    },
)
def decide_batch(
    body: BatchDecisionRequest,
    _: OrchestratorDep,
    engine: EngineDep,
    metrics: MetricsDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """Decide for many customers (or an objective's whole segment), streamed as JSON lines."""
    if body.objective is not None:
        # checked before streaming starts, so an unknown objective is a 404, not a cut stream
        objective = engine.objective(body.objective)
        if objective.status != "active":
            raise Conflict(f"objective {objective.id!r} is {objective.status}, not active")
    ids: Iterable[str]
    if body.customer_ids is not None:
        if len(body.customer_ids) > settings.batch_limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                detail=f"{len(body.customer_ids)} customers; at most {settings.batch_limit} "
                "per batch (or decide for an objective's segment)",
            )
        ids = list(dict.fromkeys(body.customer_ids))  # each customer decided once
    else:
        assert body.objective is not None
        ids = engine.segment_members(body.objective, as_of=body.as_of)
    chunks = engine.decide_chunks(
        ids, objective_id=body.objective, request=body.context, as_of=body.as_of
    )
    return StreamingResponse(_lines(chunks, metrics), media_type=NDJSON)


def _lines(chunks: Iterable[list[Decision]], metrics: Metrics) -> Iterator[bytes]:
    """Each chunk's lines written at once: a sync stream costs the server a thread-pool hop
    and a write per piece it yields, more than a line's decision."""
    for decisions in chunks:
        metrics.record(decisions)
        yield b"".join([decision_json(d) + b"\n" for d in decisions])


@router.get("/{decision_id}")
def get_decision(
    decision_id: DecisionId, _: OrchestratorDep, store: StoreDep
) -> LoggedDecisionPublic:
    """Read a logged decision with its delivery status and reward."""
    return LoggedDecisionPublic.of_logged(store.get_decision(decision_id))


@router.post("/{decision_id}/confirm")
def confirm(
    decision_id: DecisionId,
    _: OrchestratorDep,
    engine: EngineDep,
    body: Annotated[ConfirmIn | None, Body()] = None,
) -> ConfirmPublic:
    """Re-check a scheduled decision at send time: go, or cancelled with the reason."""
    return ConfirmPublic.of(engine.confirm(decision_id, at=body.at if body else None))


@router.post("/{decision_id}/outcome")
def report_outcome(
    decision_id: DecisionId, body: OutcomeIn, _: OrchestratorDep, store: StoreDep
) -> OutcomePublic:
    """Attach an explicit reward to a decision (replaces an attributed one)."""
    store.set_reward(decision_id, body.reward, "explicit", at=body.at)
    logged = store.get_decision(decision_id)
    assert logged.reward is not None and logged.reward_source is not None
    return OutcomePublic(
        decision_id=decision_id,
        reward=logged.reward,
        reward_source=logged.reward_source,
        rewarded_at=logged.rewarded_at,
    )
