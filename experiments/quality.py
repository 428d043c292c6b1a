"""Policy quality against the simulator's ground truth: the share of the oracle's lift captured.

Train on ``days`` of logged history, then, on the next day's decision moments, compare what each
policy would do with the truth: the share of the oracle's incremental net value over doing
nothing that it captures (the oracle chooses among the same eligible actions).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.channels import Channel
from decisioning.guardrails import ContactPolicy
from decisioning.objectives import Objective, load_objectives_yaml
from experiments.simulator import SimulationConfig, Simulator, capture_share, run_days
from training.dataset import TrainingSet, build_training_set
from training.fit import LearnerSettings, fit_candidates, to_batch

OBJECTIVES_DIR = Path(__file__).parent / "objectives"


def example_objective(name: str) -> Objective:
    """One of the example objectives shipped in ``experiments/objectives``."""
    return load_objectives_yaml(OBJECTIVES_DIR / f"{name}.yaml")[0]


@dataclass
class QualityResult:
    """Captured share of the oracle's lift per policy, and what it took."""

    capture: dict[str, float]
    value_per_decision: dict[str, float]
    oracle_lift_per_decision: float
    examples: int
    eval_moments: int
    nothing_best_share: float
    seconds: dict[str, float] = field(default_factory=dict)


def measure_quality(
    *,
    customers: int = 50_000,
    days: int = 30,
    seed: int = 0,
    logging: str = "uniform",
    objective_name: str = "premium_upsell",
    settings: LearnerSettings | None = None,
    with_vw: bool = True,
) -> QualityResult:
    """Simulate, train on the logged history, and score every policy against the truth."""
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    config = SimulationConfig(customers=customers, days=days, seed=seed, policy=logging)
    sim = Simulator(customers, seed=seed)
    run_days(sim, config)
    hist = sim.history(policy=logging, objective=objective_name)
    tables = {"customers": hist.customers, "contacts": hist.contacts, "events": hist.events}
    seconds["simulate"] = time.perf_counter() - t0
    objective = example_objective(objective_name)
    policy = ContactPolicy()
    t0 = time.perf_counter()
    train = build_training_set(**tables, objective=objective, policy=policy, seed=seed)
    seconds["dataset"] = time.perf_counter() - t0
    pscore = train.pscore
    if np.isnan(pscore).any():
        from models.propensity import LoggingPolicyEstimator

        x = train.customer
        est = LoggingPolicyEstimator(random_state=seed).fit(x, train.action, len(train.actions))
        pscore = np.where(np.isnan(pscore), est.pscore(x, train.action), pscore)
    t0 = time.perf_counter()
    candidates = fit_candidates(
        to_batch(train, pscore), settings or LearnerSettings(seed=seed), with_vw=with_vw
    )
    seconds["fit"] = time.perf_counter() - t0
    evalset, idx, ts = _eval_contexts(sim, tables, day=days, objective=objective, policy=policy)
    truth = sim.ground_truth(idx, ts, train.actions, objective_name)
    eligible = evalset.eligible
    masked = np.where(eligible, truth, -np.inf)
    oracle = masked.max(axis=1)
    nothing = truth[:, 0]
    batch = to_batch(evalset)
    capture: dict[str, float] = {}
    per_decision: dict[str, float] = {}
    for name, pol in candidates.policies.items():
        dist = pol.action_distributions(batch)  # type: ignore[attr-defined]
        chosen = (dist * np.where(eligible, truth, 0.0)).sum(axis=1)
        capture[name] = float(capture_share(chosen, oracle, nothing))
        per_decision[name] = float((chosen - nothing).mean())
    return QualityResult(
        capture=capture,
        value_per_decision=per_decision,
        oracle_lift_per_decision=float((oracle - nothing).mean()),
        examples=len(train),
        eval_moments=len(evalset),
        nothing_best_share=float((masked.argmax(axis=1) == 0).mean()),
        seconds=seconds,
    )


def _eval_contexts(
    sim: Simulator,
    tables: dict[str, pd.DataFrame],
    *,
    day: int,
    objective: Objective,
    policy: ContactPolicy,
) -> tuple[TrainingSet, np.ndarray, np.ndarray]:
    idx, ts = sim.decision_moments(day)
    ids = tables["customers"]["customer_id"].to_numpy()
    when = pd.to_datetime(ts, unit="s", utc=True)
    moments = pd.DataFrame(
        {
            "contact_id": [f"eval-{i}" for i in range(len(idx))],
            "customer_id": ids[idx],
            "ts": when,
            "channel": Channel.NONE.value,
            "slot": "now",
            "send_at": when,
            "objective": objective.id,
            "cost": 0.0,
            "propensity": 1.0,
            "decision_id": "",
        }
    )
    history_sends = tables["contacts"].assign(objective="__history__")
    contacts = pd.concat([history_sends, moments], ignore_index=True)
    built = build_training_set(
        customers=tables["customers"],
        contacts=contacts,
        events=tables["events"],
        objective=objective,
        policy=policy,
        sample_nothing=False,
    )
    pos = np.array([int(c.split("-")[1]) for c in built.decision_ids])
    return built, idx[pos], ts[pos]
