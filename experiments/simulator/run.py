"""Write a simulated history: run a logging policy over a world for a number of days."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from decisioning.actions import ActionSpace
from decisioning.errors import InvalidInput
from experiments.simulator.engine import Simulator
from experiments.simulator.logging_policies import (
    LOGGING_POLICIES,
    LoggingPolicy,
    legacy_choice,
    uniform_choice,
)
from experiments.simulator.objectives import get_objective
from experiments.simulator.tables import SimulatedHistory, format_ids
from experiments.simulator.world import WorldConfig

_STREAM_POLICY = 9

#: called each day before the policy decides, with the simulator, the day and its moments
DayHook = Callable[[Simulator, int, np.ndarray, np.ndarray], None]


@dataclass(frozen=True)
class SimulationConfig:
    """What history to write: how many customers and days, which seed, policy and objective."""

    customers: int = 10_000
    days: int = 30
    seed: int = 0
    policy: LoggingPolicy = "uniform"
    objective: str = "premium_upsell"
    start: datetime | None = None
    world: WorldConfig = field(default_factory=WorldConfig)
    actions: ActionSpace = field(default_factory=ActionSpace.build)

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise InvalidInput(f"customers must be >= 1, got {self.customers}")
        if self.days < 1:
            raise InvalidInput(f"days must be >= 1, got {self.days}")
        if self.policy not in LOGGING_POLICIES:
            raise InvalidInput(
                f"policy {self.policy!r} is not one of {', '.join(LOGGING_POLICIES)}"
            )
        get_objective(self.objective)


def run_days(sim: Simulator, config: SimulationConfig, on_day: DayHook | None = None) -> None:
    """Run ``config.policy`` on ``sim`` for ``config.days`` days from the world's current day."""
    rng = np.random.default_rng([config.seed, _STREAM_POLICY, sim.day])
    actions, keys = config.actions, np.array(config.actions.keys, dtype=object)
    decided = len(sim.contact_log)
    for day in range(sim.day, sim.day + config.days):
        idx, ts = sim.decision_moments(day)
        if on_day is not None:
            on_day(sim, day, idx, ts)
        if config.policy == "uniform":
            choice, propensity = uniform_choice(sim.eligible(idx, ts, actions), rng)
        else:
            choice, propensity = legacy_choice(sim, idx, ts, actions), None
        ids = format_ids("d", decided + np.arange(len(idx)), 9)
        decided += len(idx)
        sim.apply_decisions(
            day, idx, ts, keys[choice], ids, objective=config.objective, propensities=propensity
        )
        sim.step(day)


def simulate(
    config: SimulationConfig | None = None, on_day: DayHook | None = None
) -> SimulatedHistory:
    """Simulate ``config.days`` days of a fresh world under a logging policy; return the tables.

    >>> history = simulate(SimulationConfig(customers=50, days=2, seed=1))
    >>> len(history.customers), history.contacts.propensity.notna().all()
    (50, np.True_)
    """
    config = config or SimulationConfig()
    sim = Simulator(config.customers, seed=config.seed, start=config.start, world=config.world)
    run_days(sim, config, on_day)
    return sim.history(policy=config.policy, objective=get_objective(config.objective).name)
