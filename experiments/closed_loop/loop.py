"""The closed-loop experiment: the service deciding, day after day, for a simulated world.

Typical use (what ``decisioning experiment`` runs)::

    result = run_experiment(Settings(), days=14, customers=5_000, seed=0,
                            out_dir=Path("reports/closed_loop"), console=Console())
    result.index_html  # the report, with its plots

Every arm decides for its own copy of the same world (same customers, same organic behaviour),
through the same engine and store code as the API; only the policy differs. A day runs tick by
tick (events in, decisions, sends), the world writes the rest of the day, the reward job
attributes the decisions whose window has passed, and the learned arm retrains overnight.
After the last day the world runs on for the attribution window without new decisions, so every
decision gets its full window.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from decisioning.errors import InvalidInput
from decisioning.fatigue import DAY
from decisioning.objectives import Objective
from decisioning.settings import Settings
from experiments.closed_loop.arm import ArmRun
from experiments.closed_loop.arms import ARMS, LEARNED, ORACLE
from experiments.closed_loop.attribution import attribute_due
from experiments.closed_loop.feed import events_since, sim_objective
from experiments.closed_loop.learning import Night, train_night
from experiments.closed_loop.result import ExperimentResult, collect
from experiments.closed_loop.setup import Arms, build_arms, warm_up
from experiments.quality import example_objective
from experiments.simulator.world import WorldConfig
from training.fit import LearnerSettings


@dataclass(frozen=True)
class ExperimentConfig:
    """What to run: world size and seed, how long, how often time ticks and the policy learns.

    ``train_days`` bounds a night's training to the decisions of the last so many days (those
    whose attribution window has passed); ``retrain_every`` is the number of nights between two
    runs of the learned arm's training. After the last day the world runs ``cooldown_days``
    more days without decisions (default: the attribution window, so every decision is rewarded).
    """

    customers: int = 5_000
    days: int = 14
    warmup_days: int = 21
    seed: int = 0
    tick_minutes: int = 60
    train_days: float = 21.0
    cooldown_days: int | None = None
    retrain_every: int = 1
    objective: str = "premium_upsell"
    arms: tuple[str, ...] = ARMS
    world: WorldConfig = field(default_factory=WorldConfig)
    learner: LearnerSettings | None = None

    def __post_init__(self) -> None:
        if self.customers < 10:
            raise InvalidInput(f"customers must be >= 10, got {self.customers}")
        if self.days < 1:
            raise InvalidInput(f"days must be >= 1, got {self.days}")
        if self.warmup_days < 2:
            raise InvalidInput(f"warmup_days must be >= 2, got {self.warmup_days}")
        if self.tick_minutes < 1 or 60 % self.tick_minutes:
            # send times fall on whole local hours: ticks must divide the hour to meet them
            raise InvalidInput(f"tick_minutes must divide 60, got {self.tick_minutes}")
        if self.cooldown_days is not None and self.cooldown_days < 0:
            raise InvalidInput(f"cooldown_days must be >= 0, got {self.cooldown_days}")
        if self.retrain_every < 1:
            raise InvalidInput(f"retrain_every must be >= 1, got {self.retrain_every}")
        unknown = sorted(set(self.arms) - set(ARMS))
        if unknown:
            raise InvalidInput(f"unknown arms {unknown} (expected some of: {', '.join(ARMS)})")
        if ORACLE not in self.arms:
            raise InvalidInput("arms: the oracle is needed to measure regret")


def run(
    config: ExperimentConfig,
    *,
    settings: Settings,
    out_dir: Path,
    console: Console | None = None,
) -> ExperimentResult:
    """Run the experiment, write its report under ``out_dir`` and log it to MLflow.

    ``out_dir`` receives ``arms/`` (each arm's store, and the learned arm's MLflow store) and
    ``report/`` (``index.html``, the pictures and CSV tables); an earlier run's ``arms/`` there
    is replaced. The experiment run is logged to the MLflow store of ``settings``.
    """
    console = console or Console(quiet=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    objective = example_objective(config.objective)
    if objective.status != "active":
        objective = objective.activate()
    target = sim_objective(objective)
    learner = config.learner or LearnerSettings(seed=config.seed)
    console.print(
        f"closed loop: {config.customers:,} customers, {config.warmup_days} warm-up days, "
        f"{config.days} days, arms: {', '.join(config.arms)}"
    )
    warmup = warm_up(
        customers=config.customers, days=config.warmup_days, seed=config.seed,
        world=config.world, objective=target,
    )  # fmt: skip
    arms = build_arms(
        config.arms, warmup=warmup, objective=objective, sim_objective=target,
        folder=out_dir / "arms", seed=config.seed, learner=learner,
        train_days=config.train_days,
    )  # fmt: skip
    seconds["setup"] = time.perf_counter() - started
    if arms.nights:
        console.print(f"first policy: {_night_words(arms.nights[-1])}")
    cooldown = config.cooldown_days
    if cooldown is None:
        cooldown = math.ceil(objective.attribution_window_days)
    loop_start = warmup.start
    for offset in range(config.days + cooldown):
        day = warmup.sim.day + offset
        deciding = offset < config.days
        tic = time.perf_counter()
        for run_ in arms.runs.values():
            _run_day(run_, day, deciding=deciding, tick=config.tick_minutes * 60.0)
        _attribute(arms)
        seconds["loop"] = seconds.get("loop", 0.0) + time.perf_counter() - tic
        note = ""
        if deciding and offset < config.days - 1 and (offset + 1) % config.retrain_every == 0:
            tic = time.perf_counter()
            note = _retrain(arms, objective, learner, day=offset, train_days=config.train_days)
            seconds["training"] = seconds.get("training", 0.0) + time.perf_counter() - tic
        if deciding:
            console.print(_day_line(arms, offset, config.days, note))
        elif offset == config.days and cooldown:
            console.print(f"attribution window: {cooldown} more days without new decisions")
    tic = time.perf_counter()
    result = collect(
        arms, config=config, objective=objective, settings=settings, out_dir=out_dir,
        loop_start=loop_start, console=console,
    )  # fmt: skip
    seconds["report"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - started
    result.seconds.update(seconds)
    return result


def _run_day(run_: ArmRun, day: int, *, deciding: bool, tick: float) -> None:
    """One day of an arm: its ticks (events, decisions, sends), then the rest of the day."""
    sim = run_.sim
    start = sim.day_start(day)
    if deciding:
        idx, ts = sim.decision_moments(day)
        slot = np.floor((ts - start) / tick).astype(np.int64)
    else:
        idx, slot = np.empty(0, np.int64), np.empty(0, np.int64)
    bounds = np.searchsorted(slot, np.arange(int(DAY // tick) + 1))
    for k in range(int(DAY // tick)):
        t0, t1 = start + k * tick, start + (k + 1) * tick
        # two moments of one customer in a tick are one decision
        customers = np.unique(idx[bounds[k] : bounds[k + 1]])
        if len(customers) or run_.has_due(t1):
            run_.tick(day, t0, t1, customers)
    run_.end_day(day)


def _attribute(arms: Arms) -> None:
    """The nightly reward job of every arm: rewards of the decisions whose window has passed."""
    for run_ in arms.runs.values():
        sim = run_.sim
        now = sim.day_start(sim.day)
        window = run_.objective.attribution_window_days * DAY
        due = run_.ledger.unrewarded_before(now - window)
        if len(due) == 0:
            continue
        since = float(np.min(np.asarray(run_.ledger.decided_at)[due]))
        attribute_due(
            ledger=run_.ledger, store=run_.store, events=events_since(sim, since),
            objective=run_.objective, customer_ids=sim.population.customer_ids, now=now,
        )  # fmt: skip


def _retrain(
    arms: Arms, objective: Objective, learner: LearnerSettings, *, day: int, train_days: float
) -> str:
    """The learned arm's nightly training run; the engine then serves whatever is champion."""
    if LEARNED not in arms.runs or arms.learned_data is None or arms.learned_settings is None:
        return ""
    run_ = arms.runs[LEARNED]
    frames = arms.learned_data.frames(
        objective=objective, store=run_.store, now=run_.sim.day_start(run_.sim.day),
        train_days=train_days,
    )  # fmt: skip
    night = train_night(
        day=day, frames=frames, objective=objective, settings=arms.learned_settings,
        learner=replace(learner, seed=learner.seed + day + 1),
    )  # fmt: skip
    arms.nights.append(night)
    assert arms.champions is not None
    arms.champions.reload()
    return _night_words(night)


def _night_words(night: Night) -> str:
    verdict = "champion" if night.promoted else "challenger"
    return (
        f"{night.candidate} v{night.model_version} on {night.examples:,} decisions -> {verdict} "
        f"({night.seconds:.0f}s)"
    )


def _day_line(arms: Arms, offset: int, days: int, note: str) -> str:
    parts = []
    for name, run_ in arms.runs.items():
        ledger = run_.ledger
        gain = float(np.sum(np.asarray(ledger.truth_chosen) - np.asarray(ledger.truth_nothing)))
        parts.append(f"{name} {gain:+,.0f}")
    line = f"day {offset + 1}/{days}: value over doing nothing: " + ", ".join(parts)
    return line + (f"\n  retrained: {note}" if note else "")


def run_experiment(
    settings: Settings,
    days: int = 14,
    customers: int = 5_000,
    seed: int = 0,
    out_dir: Path | None = None,
    console: Console | None = None,
    **options: Any,
) -> ExperimentResult:
    """``decisioning experiment``: the closed loop with its report (see :class:`ExperimentConfig`).

    ``out_dir`` defaults to ``<data_dir>/experiments/closed_loop``; ``options`` set the other
    fields of :class:`ExperimentConfig` (``warmup_days``, ``tick_minutes``, ``world``, ...).
    """
    config = ExperimentConfig(customers=customers, days=days, seed=seed, **options)
    folder = (
        Path(out_dir) if out_dir is not None else settings.data_dir / "experiments" / "closed_loop"
    )
    return run(config, settings=settings, out_dir=folder, console=console)
