"""Policy quality against the simulator's ground truth: the share of the oracle's lift captured.

Train on ``days`` of logged history, then, on the decision moments of the following
``eval_days`` days (the logging policy goes on deciding meanwhile), compare what each policy
would do with the truth: the share of the oracle's incremental net value over doing nothing that
it captures (the oracle chooses among the same eligible actions).

Simulating and replaying the history is most of the cost, so :func:`quality_data` can keep what
it built in a cache folder, keyed by everything it depends on.
"""

from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from decisioning.channels import Channel
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from decisioning.guardrails import ContactPolicy
from decisioning.objectives import Objective, load_objectives_yaml
from decisioning.policy import Policy
from experiments.simulator import (
    SimulatedHistory,
    SimulationConfig,
    Simulator,
    WorldConfig,
    capture_share,
    oracle_actions,
    run_days,
)
from training.dataset import TrainingSet, build_training_set
from training.fit import LearnerSettings, fit_candidates, to_batch

OBJECTIVES_DIR = Path(__file__).parent / "objectives"
#: bump when what :func:`quality_data` builds changes, so stale cache files are not reused
_DATA_VERSION = 3
#: rows the logging-policy model of a history without propensities is fitted on
_PROPENSITY_ROWS = 40_000


def example_objective(name: str) -> Objective:
    """One of the example objectives shipped in ``experiments/objectives``."""
    return load_objectives_yaml(OBJECTIVES_DIR / f"{name}.yaml")[0]


@dataclass
class QualityData:
    """What a quality run learns from and is scored against.

    ``train`` holds the logged decisions of the first ``days`` (with ``pscore``: the logged
    propensities, or estimated ones where the history logged none); ``evalset`` the contexts of
    the evaluation moments, and ``truth`` (n_eval, n_actions) the expected net value of every
    action at each of them.
    """

    train: TrainingSet
    pscore: np.ndarray
    evalset: TrainingSet
    truth: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def oracle(self) -> np.ndarray:
        """The best eligible action's value at each evaluation moment."""
        return np.where(self.evalset.eligible, self.truth, -np.inf).max(axis=1)


@dataclass
class QualityResult:
    """Captured share of the oracle's lift per policy, and what it took."""

    capture: dict[str, float]
    value_per_decision: dict[str, float]
    contact_share: dict[str, float]
    oracle_lift_per_decision: float
    examples: int
    eval_moments: int
    nothing_best_share: float
    seconds: dict[str, float] = field(default_factory=dict)


def quality_data(
    *,
    customers: int,
    days: int = 30,
    eval_days: int = 1,
    seed: int = 0,
    logging: str = "uniform",
    objective_name: str = "premium_upsell",
    world: WorldConfig | None = None,
    cache_dir: str | Path | None = None,
) -> QualityData:
    """Simulate ``days + eval_days`` days under ``logging``; build the training and eval sets.

    With ``cache_dir``, a result built before with the same arguments is read back instead.
    """
    world = world or WorldConfig()
    path = None
    if cache_dir is not None:
        key = repr(
            (_DATA_VERSION, customers, days, eval_days, seed, logging, objective_name, world,
             BEHAVIOUR_FEATURES, ACTION_FEATURES)
        )  # fmt: skip
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        path = Path(cache_dir) / f"quality-{customers}-{logging}-{digest}.pkl"
        if path.exists():
            with path.open("rb") as fh:
                data: QualityData = pickle.load(fh)
            return data
    data = _build(
        customers=customers,
        days=days,
        eval_days=eval_days,
        seed=seed,
        logging=logging,
        objective_name=objective_name,
        world=world,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    return data


def _build(
    *,
    customers: int,
    days: int,
    eval_days: int,
    seed: int,
    logging: str,
    objective_name: str,
    world: WorldConfig,
) -> QualityData:
    if eval_days < 1:
        raise ValueError(f"eval_days must be at least 1, got {eval_days}")
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    config = SimulationConfig(
        customers=customers,
        days=days + eval_days,
        seed=seed,
        policy=logging,  # type: ignore[arg-type]
        objective=objective_name,
        world=world,
    )
    sim = Simulator(customers, seed=seed, world=world)
    moments: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    objective = example_objective(objective_name)
    actions = objective.action_space()  # the objective's own channels and slots

    def record_truth(s: Simulator, day: int, idx: np.ndarray, ts: np.ndarray) -> None:
        # The truth of a moment is taken before anything is decided on its day.
        if day >= days:
            moments.append((idx, ts, s.ground_truth(idx, ts, actions, objective_name)))

    run_days(sim, config, record_truth)
    hist = sim.history(policy=logging, objective=objective_name)
    seconds["simulate"] = time.perf_counter() - t0

    policy = ContactPolicy()
    cut = pd.Timestamp(sim.day_start(days), unit="s", tz="UTC")
    t0 = time.perf_counter()
    # What was known when the training history ends: its decisions and events, nothing later.
    train = build_training_set(
        customers=hist.customers,
        contacts=hist.contacts[hist.contacts["ts"] < cut],
        events=hist.events[hist.events["ts"] < cut],
        objective=objective,
        policy=policy,
        seed=seed,
    )
    seconds["dataset"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pscore = train.pscore
    if np.isnan(pscore).any():
        from models.propensity import LoggingPolicyEstimator

        x = train.customer
        # A rule-based log is easy to learn: a sample of it gives the same propensities in a
        # fraction of the time.
        rng = np.random.default_rng(seed)
        fit_rows = rng.permutation(len(train))[:_PROPENSITY_ROWS]
        est = LoggingPolicyEstimator(random_state=seed).fit(
            x[fit_rows], train.action[fit_rows], len(train.actions)
        )
        pscore = np.where(np.isnan(pscore), est.pscore(x, train.action), pscore)
    seconds["propensity"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    idx = np.concatenate([m[0] for m in moments])
    ts = np.concatenate([m[1] for m in moments])
    truth = np.concatenate([m[2] for m in moments])
    evalset, pos = _eval_contexts(hist, idx, ts, objective=objective, policy=policy)
    if evalset.actions.keys != actions.keys:
        raise ValueError("the evaluation moments and their truth have different action spaces")
    seconds["eval_set"] = time.perf_counter() - t0
    return QualityData(
        train=train, pscore=pscore, evalset=evalset, truth=truth[pos], seconds=seconds
    )


def _eval_contexts(
    hist: SimulatedHistory,
    idx: np.ndarray,
    ts: np.ndarray,
    *,
    objective: Objective,
    policy: ContactPolicy,
) -> tuple[TrainingSet, np.ndarray]:
    """The decision contexts at the evaluation moments, and which moment each one is.

    Every logged contact is history here (it feeds the customer's state but is no example);
    the moments are replayed as decisions. Moments the objective skips (a customer outside its
    segment) have no context.
    """
    customers = hist.customers
    ids = customers["customer_id"].to_numpy()
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
    history_sends = hist.contacts.assign(objective="__history__")
    built = build_training_set(
        customers=customers,
        contacts=pd.concat([history_sends, moments], ignore_index=True),
        events=hist.events,
        objective=objective,
        policy=policy,
        sample_nothing=False,
    )
    pos = np.array([int(c.split("-")[1]) for c in built.decision_ids], dtype=np.int64)
    return built, pos


def score_policies(policies: dict[str, Policy], data: QualityData) -> QualityResult:
    """Each policy's captured share of the oracle's lift on ``data``'s evaluation moments."""
    eligible = data.evalset.eligible
    truth = np.where(eligible, data.truth, 0.0)
    oracle, nothing = data.oracle, data.truth[:, 0]
    batch = to_batch(data.evalset)
    capture: dict[str, float] = {}
    per_decision: dict[str, float] = {}
    contact: dict[str, float] = {}
    for name, pol in policies.items():
        dist = pol.action_distributions(batch)  # type: ignore[attr-defined]
        chosen = (dist * truth).sum(axis=1)
        capture[name] = float(capture_share(chosen, oracle, nothing))
        per_decision[name] = float((chosen - nothing).mean())
        contact[name] = float(1.0 - dist[:, 0].mean())
    best = oracle_actions(data.truth, eligible)
    return QualityResult(
        capture=capture,
        value_per_decision=per_decision,
        contact_share=contact,
        oracle_lift_per_decision=float((oracle - nothing).mean()),
        examples=len(data.train),
        eval_moments=len(data.evalset),
        nothing_best_share=float((best == 0).mean()),
        seconds=dict(data.seconds),
    )


def measure_quality(
    *,
    customers: int = 50_000,
    days: int = 30,
    eval_days: int = 1,
    seed: int = 0,
    logging: str = "uniform",
    objective_name: str = "premium_upsell",
    settings: LearnerSettings | None = None,
    with_vw: bool = True,
    world: WorldConfig | None = None,
    cache_dir: str | Path | None = None,
) -> QualityResult:
    """Simulate, train on the logged history, and score every policy against the truth."""
    data = quality_data(
        customers=customers,
        days=days,
        eval_days=eval_days,
        seed=seed,
        logging=logging,
        objective_name=objective_name,
        world=world,
        cache_dir=cache_dir,
    )
    t0 = time.perf_counter()
    candidates = fit_candidates(
        to_batch(data.train, data.pscore), settings or LearnerSettings(seed=seed), with_vw=with_vw
    )
    fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = score_policies(candidates.policies, data)
    result.seconds.update(
        {f"fit_{k}": v for k, v in candidates.seconds.items()},
        fit=fit_seconds,
        score=time.perf_counter() - t0,
    )
    return result
