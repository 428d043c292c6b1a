"""A seedable synthetic world of customers: its history, and the ground truth policies are scored on.

Typical use::

    history = simulate(SimulationConfig(customers=10_000, days=30, seed=0))
    history.write("data/sim", format="parquet")

or, step by step for a closed loop::

    sim = Simulator(10_000, seed=0)
    for day in range(30):
        idx, ts = sim.decision_moments(day)
        values = sim.ground_truth(idx, ts, actions, "premium_upsell")
        sim.apply_decisions(day, idx, ts, keys, decision_ids, objective="premium_upsell")
        sim.step(day)
"""

from experiments.simulator.engine import Simulator, action_codes
from experiments.simulator.logging_policies import LOGGING_POLICIES, legacy_choice, uniform_choice
from experiments.simulator.objectives import (
    CATEGORIES,
    CHURN,
    OBJECTIVES,
    PREMIUM_UPSELL,
    SimObjective,
    get_objective,
)
from experiments.simulator.response import capture_share, oracle_actions
from experiments.simulator.run import SimulationConfig, run_days, simulate
from experiments.simulator.tables import SimulatedHistory
from experiments.simulator.world import WorldConfig

__all__ = [
    "CATEGORIES",
    "CHURN",
    "LOGGING_POLICIES",
    "OBJECTIVES",
    "PREMIUM_UPSELL",
    "SimObjective",
    "SimulatedHistory",
    "SimulationConfig",
    "Simulator",
    "WorldConfig",
    "action_codes",
    "capture_share",
    "get_objective",
    "legacy_choice",
    "oracle_actions",
    "run_days",
    "simulate",
    "uniform_choice",
]
