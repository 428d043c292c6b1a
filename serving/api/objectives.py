"""Objectives: register, list, read, edit (a new version), pause, activate, archive."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, status

from decisioning.objectives import Objective, ObjectiveSpec
from decisioning.store import Store
from serving.deps import EngineDep, ObjectiveReaderDep, ObjectiveWriterDep, StoreDep
from serving.engine import DecisionEngine
from serving.schemas import ObjectiveCreate, ObjectivePublic, ObjectiveUpdate

router = APIRouter(prefix="/v1/objectives", tags=["objectives"])

ObjectiveId = Annotated[str, Path(max_length=64, description="the objective's id")]


def load_objective(store: Store, objective_id: str, version: int | None = None) -> Objective:
    """The stored objective (its latest version by default) as the domain model."""
    return Objective.model_validate(store.get_objective(objective_id, version))


@router.post("", status_code=status.HTTP_201_CREATED)
def create_objective(
    body: ObjectiveCreate, _: ObjectiveWriterDep, store: StoreDep, engine: EngineDep
) -> ObjectivePublic:
    """Register an objective (a draft unless ``status`` is active); its segment is checked."""
    fields = engine.fields()
    spec = ObjectiveSpec.validate_against(body.content(), fields)
    objective = spec.to_objective(body.id, fields=fields)
    if body.status == "active":
        objective = objective.activate()
    store.save_objective(objective.model_dump(mode="json"), expected_version=0)
    engine.refresh()
    return ObjectivePublic.of(objective)


@router.get("")
def list_objectives(
    _: ObjectiveReaderDep,
    store: StoreDep,
    status: Annotated[
        Literal["draft", "active", "paused", "archived"] | None,
        Query(description="only objectives in this status"),
    ] = None,
) -> list[ObjectivePublic]:
    """List the objectives (latest version of each), by id."""
    return [
        ObjectivePublic.of(Objective.model_validate(doc))
        for doc in store.list_objectives(status=status)
    ]


@router.get("/{objective_id}")
def get_objective(
    objective_id: ObjectiveId,
    _: ObjectiveReaderDep,
    store: StoreDep,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> ObjectivePublic:
    """Read an objective, at its latest version or the one asked for."""
    return ObjectivePublic.of(load_objective(store, objective_id, version))


@router.get("/{objective_id}/versions")
def objective_versions(
    objective_id: ObjectiveId, _: ObjectiveReaderDep, store: StoreDep
) -> list[ObjectivePublic]:
    """Every version of an objective, oldest first (its edit history)."""
    return [
        ObjectivePublic.of(Objective.model_validate(doc))
        for doc in store.objective_versions(objective_id)
    ]


@router.patch("/{objective_id}")
def update_objective(
    objective_id: ObjectiveId,
    body: ObjectiveUpdate,
    _: ObjectiveWriterDep,
    store: StoreDep,
    engine: EngineDep,
) -> ObjectivePublic:
    """Edit an objective: the changes make a new version (the status is kept)."""
    current = load_objective(store, objective_id)
    changes = body.changes()
    # A segment is checked against the customers' fields when it changes; an unchanged one
    # keeps the check it passed when it was set.
    fields = engine.fields() if "segment" in changes else None
    changed = current.with_changes(fields=fields, **changes)
    store.save_objective(changed.model_dump(mode="json"), expected_version=current.version)
    engine.refresh()
    return ObjectivePublic.of(changed)


def _move(store: Store, engine: DecisionEngine, objective_id: str, to: str) -> ObjectivePublic:
    current = load_objective(store, objective_id)
    moved = {"active": current.activate, "paused": current.pause, "archived": current.archive}[to]()
    if moved.status != current.status:
        moved = Objective.model_validate(store.set_objective_status(objective_id, moved.status))
        engine.refresh()
    return ObjectivePublic.of(moved)


@router.post("/{objective_id}/activate")
def activate_objective(
    objective_id: ObjectiveId, _: ObjectiveWriterDep, store: StoreDep, engine: EngineDep
) -> ObjectivePublic:
    """Activate an objective (from draft or paused): it starts deciding."""
    return _move(store, engine, objective_id, "active")


@router.post("/{objective_id}/pause")
def pause_objective(
    objective_id: ObjectiveId, _: ObjectiveWriterDep, store: StoreDep, engine: EngineDep
) -> ObjectivePublic:
    """Pause an active objective: it stops deciding until activated again."""
    return _move(store, engine, objective_id, "paused")


@router.post("/{objective_id}/archive")
def archive_objective(
    objective_id: ObjectiveId, _: ObjectiveWriterDep, store: StoreDep, engine: EngineDep
) -> ObjectivePublic:
    """Archive an objective for good (it can no longer be activated or edited)."""
    return _move(store, engine, objective_id, "archived")
