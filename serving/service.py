"""Assembles the running service from settings: store, champion policies, engine, app."""

from __future__ import annotations

from typing import Any

from decisioning.settings import Settings
from serving.engine import DecisionEngine


def build_engine(settings: Settings, *, policies: Any = None) -> DecisionEngine:
    """The decision engine on the settings' store, serving the MLflow champions."""
    from decisioning.arbitration import ArbitrationWindow
    from decisioning.store import open_store
    from training.registry import ChampionPolicies

    store = open_store(settings.resolved_database_url, create=True)
    return DecisionEngine(
        store=store,
        policies=policies or ChampionPolicies(settings),
        arbitration=ArbitrationWindow(settings.arbitration_window_hours),
        seed=settings.seed,
        log_features=settings.online_learning,
    )


def create_service_app(settings: Settings) -> Any:
    """The FastAPI app as ``decisioning serve`` runs it."""
    from serving.app import create_app

    engine = build_engine(settings)
    return create_app(settings, store=engine.store, policies=engine.policies, engine=engine)
