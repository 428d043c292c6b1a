"""The decision API: a thin FastAPI layer over the decision engine and the store.

Build it with :func:`create_app` (nothing happens at import time); ``decisioning serve`` runs
it with the MLflow champions (:func:`serving.service.create_service_app`). The OpenAPI
description is at ``/openapi.json``, browsable at ``/docs``.

Endpoints (every ``/v1`` call needs an ``X-API-Key`` header whose role is listed)::

    POST  /v1/objectives                      register an objective        marketer, admin
    GET   /v1/objectives[?status=]            list objectives              all roles
    GET   /v1/objectives/{id}[?version=]      read one (a version)         all roles
    GET   /v1/objectives/{id}/versions        its edit history             all roles
    PATCH /v1/objectives/{id}                 edit: a new version          marketer, admin
    POST  /v1/objectives/{id}/activate        start deciding               marketer, admin
    POST  /v1/objectives/{id}/pause           stop deciding                marketer, admin
    POST  /v1/objectives/{id}/archive         retire for good              marketer, admin
    GET   /v1/objectives/{id}/report          decisions, spend, lift       marketer, admin
    POST  /v1/events                          ingest one event             orchestrator, admin
    POST  /v1/events/batch                    ingest a batch (413 > limit) orchestrator, admin
    POST  /v1/contacts                        report sent/delivered/...    orchestrator, admin
    POST  /v1/decisions                       decide for one customer      orchestrator, admin
    POST  /v1/decisions/batch                 decide many, NDJSON stream   orchestrator, admin
    GET   /v1/decisions/{id}                  a logged decision            orchestrator, admin
    POST  /v1/decisions/{id}/confirm          send-time re-check           orchestrator, admin
    POST  /v1/decisions/{id}/outcome          explicit reward              orchestrator, admin
    GET   /v1/models                          policy serving each goal     data_scientist, marketer, admin
    POST  /v1/models/reload                   load the current champions   data_scientist, admin
    GET   /health  /ready  /metrics           liveness, readiness, Prometheus (open)

Errors: 401 without a valid key, 403 for a role not listed, 404 for an unknown id, 409 for an
operation the current state forbids (e.g. confirming a cancelled decision), 413 for a batch
over ``batch_limit``, 422 for invalid input (naming the field).

``POST /v1/decisions`` is mostly answered in front of the router, by the same steps as its route
(:mod:`serving.decision_lane`); the route answers whatever the lane steps aside from.

Without ``DECISIONING_API_KEYS`` the service runs open (every caller is admin) and logs a
warning: for local development only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from decisioning.arbitration import ArbitrationWindow
from decisioning.errors import InvalidInput
from decisioning.settings import Settings
from decisioning.store import Store, open_store
from serving import errors
from serving.api import ROUTERS
from serving.decision_lane import DecisionLane
from serving.deps import Service
from serving.engine import DecisionEngine, PolicySource
from serving.metrics import Metrics, MetricsMiddleware
from serving.policies import FallbackPolicies
from serving.security import ApiKeys, warn_if_open

API_VERSION = "1.0"


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    policies: PolicySource | None = None,
    engine: DecisionEngine | None = None,
) -> FastAPI:
    """The API over ``engine`` (built from ``store`` and ``policies`` when not given).

    Parameters
    ----------
    settings : Settings
        API keys, batch limit, arbitration window, seed; and the database URL when no store
        is given.
    store : Store, optional
        The store to serve; default: opened at ``settings.resolved_database_url`` (tables
        created) and closed when the app shuts down.
    policies : PolicySource, optional
        Each objective's policy, e.g. ``training.registry.ChampionPolicies``; default: the
        rule-based fallback for every objective.
    engine : DecisionEngine, optional
        A ready engine (its store and policies are then the app's).
    """
    api_keys = ApiKeys.parse(settings.api_keys.get_secret_value())
    warn_if_open(api_keys)
    if engine is not None:
        if store is not None and store is not engine.store:
            raise InvalidInput("create_app: the store given is not the engine's store")
        if policies is not None and policies is not engine.policies:
            raise InvalidInput("create_app: the policies given are not the engine's policies")
        store, policies = engine.store, engine.policies
    owns_store = store is None
    if store is None:
        store = open_store(settings.resolved_database_url, create=True)
    else:
        store.create_all()
    if policies is None:
        policies = FallbackPolicies(seed=settings.seed)
    if engine is None:
        engine = DecisionEngine(
            store=store,
            policies=policies,
            arbitration=ArbitrationWindow(settings.arbitration_window_hours),
            seed=settings.seed,
        )
    metrics = Metrics()
    service = Service(
        settings=settings,
        store=store,
        engine=engine,
        policies=policies,
        api_keys=api_keys,
        metrics=metrics,
        owns_store=owns_store,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        service.engine.close()
        if service.owns_store:
            service.store.close()

    app = FastAPI(
        title="Decisioning API",
        version=API_VERSION,
        summary="Goal-driven next best action: objectives in, decisions out.",
        lifespan=lifespan,
    )
    app.state.service = service
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(DecisionLane)  # outermost: the hot call skips the router
    return app
