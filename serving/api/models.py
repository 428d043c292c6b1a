"""Models: which policy serves each objective, and reloading the champions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from decisioning.objectives import Objective
from decisioning.store import Store
from serving.deps import ModelReaderDep, ModelWriterDep, PoliciesDep, StoreDep
from serving.engine import PolicySource
from serving.schemas import ModelPublic, ModelsPublic

router = APIRouter(prefix="/v1/models", tags=["models"])


def listing(store: Store, policies: PolicySource) -> ModelsPublic:
    """The model version serving each stored objective, and what the policy source reports."""
    models = []
    for doc in store.list_objectives():
        objective = Objective.model_validate(doc)
        served = policies.policy_for(objective)
        models.append(
            ModelPublic(
                objective_id=objective.id,
                objective_status=objective.status,
                model_version=served.model_version,
                fallback=served.fallback,
            )
        )
    describe = getattr(policies, "describe", None)
    loaded: dict[str, Any] = dict(describe()) if callable(describe) else {}
    errors = getattr(policies, "errors", None)
    return ModelsPublic(
        source=type(policies).__name__,
        models=models,
        loaded=loaded,
        errors={str(k): str(v) for k, v in dict(errors or {}).items()},
    )


@router.get("")
def list_models(_: ModelReaderDep, store: StoreDep, policies: PoliciesDep) -> ModelsPublic:
    """The policy serving each objective: its champion's version, or the rule-based fallback."""
    return listing(store, policies)


@router.post("/reload")
def reload_models(_: ModelWriterDep, store: StoreDep, policies: PoliciesDep) -> ModelsPublic:
    """Load the current champions now (decisions in flight keep the policy they started with)."""
    reload = getattr(policies, "reload", None)
    if callable(reload):
        reload()
    return listing(store, policies)
