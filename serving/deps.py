"""What handlers depend on, as ``Annotated`` aliases: the service's parts and the caller's role.

The parts live on ``app.state.service`` (built by :func:`serving.app.create_app`), so each app
carries its own store, engine and metrics and nothing is global.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from decisioning.settings import Settings
from decisioning.store import Store
from serving.engine import DecisionEngine, PolicySource
from serving.metrics import Metrics
from serving.security import (
    MODEL_READERS,
    MODEL_WRITERS,
    OBJECTIVE_READERS,
    OBJECTIVE_WRITERS,
    ORCHESTRATORS,
    REPORT_READERS,
    ApiKeys,
    Caller,
    allow,
)


@dataclass
class Service:
    """Everything one app serves with."""

    settings: Settings
    store: Store
    engine: DecisionEngine
    policies: PolicySource
    api_keys: ApiKeys
    metrics: Metrics
    owns_store: bool = False


def get_service_of(request: Request) -> Service:
    """The service the request's app serves with (a plain function, for hot handlers)."""
    service: Service = request.app.state.service
    return service


_service = get_service_of


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a hop per
# dependency per request for what is an attribute read.
async def get_service(request: Request) -> Service:
    return _service(request)


async def get_settings(request: Request) -> Settings:
    return _service(request).settings


async def get_store(request: Request) -> Store:
    return _service(request).store


async def get_engine(request: Request) -> DecisionEngine:
    return _service(request).engine


async def get_policies(request: Request) -> PolicySource:
    return _service(request).policies


async def get_metrics(request: Request) -> Metrics:
    return _service(request).metrics


ServiceDep = Annotated[Service, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
EngineDep = Annotated[DecisionEngine, Depends(get_engine)]
PoliciesDep = Annotated[PolicySource, Depends(get_policies)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]

# The caller's role, checked per endpoint (see serving.security for the matrix).
ObjectiveReaderDep = Annotated[Caller, Depends(allow(*OBJECTIVE_READERS))]
ObjectiveWriterDep = Annotated[Caller, Depends(allow(*OBJECTIVE_WRITERS))]
ReportReaderDep = Annotated[Caller, Depends(allow(*REPORT_READERS))]
OrchestratorDep = Annotated[Caller, Depends(allow(*ORCHESTRATORS))]
ModelReaderDep = Annotated[Caller, Depends(allow(*MODEL_READERS))]
ModelWriterDep = Annotated[Caller, Depends(allow(*MODEL_WRITERS))]
