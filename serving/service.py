"""Assembles the running service from settings: store, champion policies, engine, app, jobs."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from decisioning.settings import Settings
from serving.engine import DecisionEngine

log = logging.getLogger("decisioning.service")


def build_engine(settings: Settings, *, policies: Any = None) -> DecisionEngine:
    """The decision engine on the settings' store, serving the MLflow champions."""
    from decisioning.arbitration import ArbitrationWindow
    from decisioning.objectives import Objective
    from decisioning.store import open_store
    from training.registry import ChampionPolicies

    # the deciding process keeps the hot customer view in memory, loaded before serving
    hot = settings.hot_store_seconds > 0
    store = open_store(
        settings.resolved_database_url,
        create=True,
        hot=hot,
        hot_ttl=settings.hot_store_seconds,
        log_process=settings.decision_log_process,
    )
    if hot:
        store.warm()
    engine = DecisionEngine(
        store=store,
        policies=policies or ChampionPolicies(settings),
        arbitration=ArbitrationWindow(settings.arbitration_window_hours),
        seed=settings.seed,
        log_features=settings.online_learning,
    )
    # the active objectives' champions load now, not on their first request
    for doc in store.list_objectives(status="active"):
        engine.policies.policy_for(Objective.model_validate(doc))
    settle_memory()
    return engine


def settle_memory() -> None:
    """Keep what the service loaded at start out of the garbage collector's passes.

    The warm customer view and the models live as long as the process: frozen (after one full
    collection of the start-up's garbage), a collection traverses only what decisions create,
    instead of pausing a request for a full pass over hundreds of thousands of objects.
    """
    gc.collect()
    gc.freeze()


class RewardJob:
    """Attributes rewards from ingested outcome events in the background, every ``interval`` s.

    With online learning on, the attributed rewards also update the champion bandits.
    """

    def __init__(self, engine: DecisionEngine, *, interval: float, online: bool) -> None:
        self.engine = engine
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.updater: Any = None
        if online:
            from training.online import OnlineUpdater

            self.updater = OnlineUpdater(engine.policies, engine.store)
        self.runs = 0
        self.rewarded = 0
        #: the last pass's decisions left without a reward, by reason
        self.skipped: dict[str, int] = {}

    def run_once(self, now: datetime | None = None) -> int:
        """One attribution pass; how many decisions it rewarded."""
        from training.attribution import attribute

        result = attribute(self.engine.store, now=now or datetime.now(UTC))
        if self.updater is not None and result.rewards:
            self.updater.submit(result.rewards)
        if result.skipped and result.skipped != self.skipped:  # said once, not at every pass
            log.warning("decisions left without a reward: %s", result.skipped)
        self.skipped = result.skipped
        self.runs += 1
        self.rewarded += len(result.rewards)
        return len(result.rewards)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:  # a failed pass is retried at the next tick, never kills serving
                log.exception("reward attribution failed")

    def start(self) -> None:
        if self.updater is not None:
            self.updater.start()
        self._thread = threading.Thread(target=self._loop, name="reward-job", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.updater is not None:
            self.updater.stop(drain=False)


def create_service_app(settings: Settings) -> Any:
    """The FastAPI app as ``decisioning serve`` runs it, with the background reward job."""
    from serving.app import create_app

    engine = build_engine(settings)
    app = create_app(settings, store=engine.store, policies=engine.policies, engine=engine)
    job = RewardJob(
        engine, interval=settings.attribution_interval_seconds, online=settings.online_learning
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[None]:
        job.start()
        try:
            async with inner(app_):
                yield
        finally:
            job.stop()
            engine.close()
            engine.store.close()

    app.router.lifespan_context = lifespan
    app.state.reward_job = job
    return app
