"""Setting up the closed loop: the warm-up world, one store per arm, and each arm's policy.

The world first runs ``warmup_days`` under uniform logging (every eligible action equally
likely, propensities logged), so the first policy has something to learn from. That history is
loaded once into a store, which is then copied for every arm; every arm also gets its own copy
of the world, so they all start from the same customers, history and random streams.
"""

from __future__ import annotations

import copy
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from decisioning.history import History
from decisioning.objectives import Objective
from decisioning.settings import Settings
from decisioning.store import Store, open_store
from experiments.closed_loop.arm import ArmRun
from experiments.closed_loop.arms import (
    BEST_SINGLE,
    DO_NOTHING,
    LEARNED,
    ORACLE,
    RANDOM,
    WATERFALL,
    OraclePolicy,
    StaticPolicies,
    TruthBook,
)
from experiments.closed_loop.learning import (
    Night,
    TrainingData,
    fit_best_single_channel,
    train_night,
)
from experiments.simulator import SimObjective, SimulationConfig, Simulator, run_days
from experiments.simulator.world import WorldConfig
from models.baselines import DoNothingPolicy, RandomPolicy, WaterfallPolicy
from serving.engine import DecisionEngine, PolicySource
from training.fit import LearnerSettings
from training.registry import ChampionPolicies


@dataclass
class Warmup:
    """The world after its warm-up, and the history it wrote."""

    sim: Simulator
    customers: pd.DataFrame
    contacts: pd.DataFrame
    events: pd.DataFrame

    @property
    def start(self) -> float:
        """Epoch seconds at which the loop starts (the day after the warm-up)."""
        return self.sim.day_start(self.sim.day)


def warm_up(
    *, customers: int, days: int, seed: int, world: WorldConfig, objective: SimObjective
) -> Warmup:
    """Run the world ``days`` days under uniform logging."""
    sim = Simulator(customers, seed=seed, world=world)
    config = SimulationConfig(
        customers=customers, days=days, seed=seed, policy="uniform", objective=objective.name,
        world=world,
    )  # fmt: skip
    run_days(sim, config)
    history = sim.history(policy="uniform", objective=objective.name)
    return Warmup(sim, history.customers, history.contacts, history.events)


def history_store(warmup: Warmup, objective: Objective, path: Path) -> Path:
    """A SQLite store at ``path`` holding the warm-up history and the active objective."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = open_store(f"sqlite:///{path}", create=True)
    try:
        history = History.from_frames(
            customers=warmup.customers, contacts=warmup.contacts, events=warmup.events,
            source="warm-up",
        )  # fmt: skip
        store.ingest_history(history)
        store.save_objective(objective.model_dump(mode="json"))
    finally:
        store.close()
    return path


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of the SQLite database at ``source`` (its WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def copy_store(source: Path, target: Path) -> Store:
    """A copy of the SQLite store at ``source`` (consistent, WAL included), opened."""
    copy_database(source, target)
    return open_store(f"sqlite:///{target}")


def arm_settings(folder: Path, seed: int) -> Settings:
    """Settings of an arm: its database and MLflow store under ``folder``, whatever the env says."""
    folder = folder.resolve()
    return Settings(
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'decisioning.db'}",
        mlflow_tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        seed=seed,
    )


@dataclass
class Arms:
    """Every arm's run, and what the learned arm needs to learn every night."""

    runs: dict[str, ArmRun]
    learned_settings: Settings | None = None
    learned_data: TrainingData | None = None
    champions: ChampionPolicies | None = None
    nights: list[Night] = field(default_factory=list)


def build_arms(
    names: tuple[str, ...],
    *,
    warmup: Warmup,
    objective: Objective,
    sim_objective: SimObjective,
    folder: Path,
    seed: int,
    learner: LearnerSettings,
    train_days: float,
) -> Arms:
    """One run per arm: world copy, store copy, policy source and engine."""
    shutil.rmtree(folder, ignore_errors=True)
    base = history_store(warmup, objective, folder / "history.db")
    data = TrainingData(warmup.sim, customers=warmup.customers, warmup_contacts=warmup.contacts)
    first = data.frames(objective=objective, store=None, now=warmup.start, train_days=train_days)
    arms = Arms(runs={})
    for name in names:
        settings = arm_settings(folder / name, seed)
        truth = TruthBook() if name == ORACLE else None
        source: PolicySource
        if name == LEARNED:
            arms.nights.append(
                train_night(
                    day=-1, frames=first, objective=objective, settings=settings, learner=learner
                )
            )
            arms.champions = source = ChampionPolicies(settings)
            arms.learned_settings = settings
        elif name == RANDOM:
            source = StaticPolicies(RandomPolicy(seed=seed), "baseline:random")
        elif name == DO_NOTHING:
            source = StaticPolicies(DoNothingPolicy(seed=seed), "baseline:do_nothing")
        elif name == BEST_SINGLE:
            policy = fit_best_single_channel(first, objective=objective, seed=seed)
            source = StaticPolicies(policy, f"baseline:best_single_channel:{policy.action_key_}")
        elif name == WATERFALL:
            source = StaticPolicies(WaterfallPolicy(seed=seed), "baseline:waterfall")
        elif name == ORACLE:
            assert truth is not None
            source = StaticPolicies(OraclePolicy(truth), "oracle:ground_truth")
        else:
            raise ValueError(f"unknown arm {name!r}")
        store = copy_store(base, folder / name / "decisioning.db")
        sim = copy.deepcopy(warmup.sim)
        engine = DecisionEngine(store=store, policies=source, seed=seed)
        arms.runs[name] = ArmRun(
            name, sim=sim, store=store, engine=engine, objective=objective,
            sim_objective=sim_objective, truth=truth,
        )  # fmt: skip
        if name == LEARNED:
            arms.learned_data = TrainingData(
                sim, customers=warmup.customers, warmup_contacts=warmup.contacts
            )
    return arms
