"""Objective preview: what an objective would bring, estimated before it goes live."""

from __future__ import annotations

from fastapi import APIRouter

from decisioning.objectives import ObjectiveSpec
from serving.deps import EngineDep, ReportReaderDep, SettingsDep, StoreDep
from serving.schemas import ObjectiveCreate
from serving.schemas.previews import PreviewPublic

router = APIRouter(prefix="/v1/objectives", tags=["objectives"])


@router.post("/preview")
def preview_objective(
    body: ObjectiveCreate,
    _: ReportReaderDep,
    store: StoreDep,
    engine: EngineDep,
    settings: SettingsDep,
) -> PreviewPublic:
    """Off-policy estimates of an objective not yet live, from the service's own history.

    The history is what the store holds: the loaded histories' contacts, the logged decisions
    and the events. Nothing is registered or stored. A history too small to learn from is a
    422 that says so.
    """
    from training.export import export_history
    from training.preview import preview_objective as estimate

    fields = engine.fields()
    spec = ObjectiveSpec.validate_against(body.content(), fields)
    objective = spec.to_objective(body.id, fields=fields)
    preview = estimate(objective, **export_history(store), settings=settings, seed=settings.seed)
    return PreviewPublic.of(preview)
