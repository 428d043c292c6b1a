"""Reports: how an objective is doing against its holdout and its target lift."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from serving.api.objectives import load_objective
from serving.deps import ReportReaderDep, StoreDep
from serving.report import build_report
from serving.schemas import ReportPublic
from serving.schemas.common import Moment

router = APIRouter(prefix="/v1/objectives", tags=["reports"])


@router.get("/{objective_id}/report")
def objective_report(
    objective_id: Annotated[str, Path(max_length=64)],
    _: ReportReaderDep,
    store: StoreDep,
    since: Annotated[Moment | None, Query(description="decisions from this moment")] = None,
    until: Annotated[Moment | None, Query(description="decisions before this moment")] = None,
    min_rewarded: Annotated[
        int, Query(ge=1, le=1_000_000, description="outcomes each arm needs for a verdict")
    ] = 30,
) -> ReportPublic:
    """Decisions, contacts, spend and lift against the holdout, with progress to the target."""
    objective = load_objective(store, objective_id)
    report = build_report(
        objective,
        store.iter_decisions(objective_id, since=since, until=until),
        channel_spend=store.spend_by_channel(objective_id, since=since, until=until),
        spend_by_period=store.spend_by_period(objective_id),
        min_rewarded=min_rewarded,
    )
    return ReportPublic.of(report)
