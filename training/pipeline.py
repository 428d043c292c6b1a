"""A training run: history -> training set -> learners -> off-policy evaluation -> MLflow.

``train`` builds the examples of one objective, fits the reward model, the learned policies and
the baselines on the earlier part of the history, evaluates them all (and the current champion)
off-policy on the later part, logs everything to MLflow, registers the best learned policy under
the objective's id, and moves the ``champion`` alias only through the promotion gate.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from decisioning.errors import LearningError
from decisioning.guardrails import ContactPolicy, ContactPolicySettings
from decisioning.objectives import Objective
from decisioning.settings import Settings
from models.outcome import RewardModel
from models.packaging import PolicyBundle, log_policy
from models.propensity import LoggingPolicyEstimator, overlap_diagnostics
from training import plots
from training.dataset import TrainingSet, build_training_set
from training.fit import LearnerSettings, fit_candidates, to_batch
from training.ope import OPETable, evaluate_policies
from training.registry import (
    CHAMPION,
    Promotion,
    alias_version,
    connect,
    experiment_for,
    load_policy_bundle,
    promote,
)

LEARNED = ("lightgbm_greedy", "vw_bandit")
#: the baseline the service serves while an objective has no champion (serving.policies)
FALLBACK_POLICY = "waterfall"
MIN_EXAMPLES = 200
#: training decisions the conversion classifier behind the outcome metrics is fitted on, at most
_METRIC_ROWS = 200_000


@dataclass
class TrainResult:
    """What a run produced: the OPE table, the registered version and the gate's verdict."""

    run_id: str
    objective_id: str
    candidate: str
    model_version: str
    promotion: Promotion
    table: pd.DataFrame
    metrics: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


def check_training_set(data: TrainingSet) -> list[str]:
    """Refuse data no sound model comes from; warn about data a model may be weak on."""
    if len(data) < MIN_EXAMPLES:
        raise LearningError(
            f"objective {data.objective_id!r}: only {len(data)} usable decisions in the history; "
            f"at least {MIN_EXAMPLES} are needed"
        )
    bad = ~np.isfinite(data.customer)
    if bad.any():
        from decisioning.features import BEHAVIOUR_FEATURES

        cols = sorted({BEHAVIOUR_FEATURES[j] for j in np.flatnonzero(bad.any(axis=0))})
        raise LearningError(f"features with NaN or infinite values: {', '.join(cols)}")
    notes: list[str] = []
    if not np.any(data.rewards.conversion) and objective_kind_increase(data):
        notes.append("no conversion in the history: every reward is only cost and fatigue harm")
    if np.all(data.reward == 0):
        notes.append("all rewards are zero: the policy can only learn to do nothing")
    counts = np.bincount(data.action, minlength=len(data.actions))
    never = [data.actions[int(i)].key for i in np.flatnonzero(counts == 0)]
    if never:
        notes.append(f"{len(never)} actions never tried in the history: {', '.join(never[:6])}")
    return notes


def objective_kind_increase(data: TrainingSet) -> bool:
    return bool(data.report.get("kind", "increase") == "increase")


def propensities(train: TrainingSet, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Logged propensities, or where missing the logging policy estimated and clipped."""
    logged = train.pscore
    info: dict[str, Any] = {"estimated_share": float(np.isnan(logged).mean())}
    if not np.isnan(logged).any():
        pscore = logged
    else:
        est = LoggingPolicyEstimator(random_state=seed, clip=0.01)
        est.fit(train.customer, train.action, len(train.actions))
        pscore = np.where(np.isnan(logged), est.pscore(train.customer, train.action), logged)
        info["estimator"] = est
    segments = (
        train.attributes["segment"].astype(str).to_numpy()
        if "segment" in train.attributes
        else None
    )
    overlap = overlap_diagnostics(pscore, train.action, segments, train.actions)
    info["overlap"] = overlap.to_dict()
    return pscore, info


@dataclass
class Evaluation:
    """The fitted learners and their off-policy evaluation on the hold-out period."""

    data: TrainingSet
    test_set: TrainingSet
    test_batch: Any
    candidates: Any
    table: OPETable
    dists: dict[str, np.ndarray]
    outcome_metrics: dict[str, float]
    prop_info: dict[str, Any]
    notes: list[str]
    n_train: int


def fit_and_evaluate(
    *,
    objective: Objective,
    customers: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    settings: Settings,
    learner: LearnerSettings,
    contact_policy: ContactPolicySettings | None = None,
    test_fraction: float = 0.25,
    progress: Callable[[str, float], None] | None = None,
    registered: tuple[str, ...] = (CHAMPION,),
) -> Evaluation:
    """Build the examples, fit on the earlier period, evaluate everything on the later one.

    ``registered`` names the registry aliases (champion, challenger) evaluated beside the
    candidates, when they exist and share the objective's action space.
    """
    step = progress or (lambda _what, _share: None)
    policy_settings = contact_policy or ContactPolicySettings()
    if objective.guardrails:
        policy_settings = policy_settings.merged(objective.guardrails)
    step("building the training set", 0.0)
    data = build_training_set(
        customers=customers,
        contacts=contacts,
        events=events,
        objective=objective,
        policy=ContactPolicy(policy_settings),
        seed=learner.seed,
    )
    data.report["kind"] = objective.kind
    notes = check_training_set(data)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    train_set, test_set = data.split_by_time(test_fraction)
    step("estimating propensities", 0.3)
    pscore_train, prop_info = propensities(train_set, learner.seed)
    if "estimator" in prop_info:
        est = prop_info["estimator"]
        logged = test_set.pscore
        pscore_test = np.where(
            np.isnan(logged), est.pscore(test_set.customer, test_set.action), logged
        )
    else:
        pscore_test = test_set.pscore
    step("fitting the learners", 0.4)
    train_batch = to_batch(train_set, pscore_train)
    test_batch = to_batch(test_set, pscore_test)
    candidates = fit_candidates(train_batch, learner)
    outcome_metrics = _conversion_metrics(
        train_batch, test_batch, train_set, test_set, learner, notes
    )
    step("evaluating off-policy", 0.7)
    with _predictions_reused(candidates.reward_model):
        # the greedy policy and the DM/DR estimates score the same rows with the same model
        dists = {
            name: pol.action_distributions(test_batch)  # type: ignore[attr-defined]
            for name, pol in candidates.policies.items()
        }
        estimated = candidates.reward_model.predict(test_batch) - test_batch.costs
    client = connect(settings)
    for alias in registered:
        if alias_version(client, objective.id, alias) is None:
            continue
        try:
            bundle = load_policy_bundle(objective.id, alias)
            if bundle.action_keys == test_set.actions.keys:
                dists[alias] = bundle.policy.action_distributions(test_batch)  # type: ignore[attr-defined]
            else:
                notes.append(f"the {alias} uses another action space: not evaluated")
        except Exception as err:  # a registered policy that cannot load does not block training
            notes.append(f"the {alias} could not be evaluated: {err}")
    table = evaluate_policies(
        reward=test_set.reward,
        action=test_set.action,
        pscore=pscore_test,
        policies=dists,
        estimated_rewards=estimated,
        random_state=learner.seed,
    )
    data.report["overlap"] = prop_info["overlap"]
    return Evaluation(
        data=data,
        test_set=test_set,
        test_batch=test_batch,
        candidates=candidates,
        table=table,
        dists=dists,
        outcome_metrics=outcome_metrics,
        prop_info=prop_info,
        notes=notes,
        n_train=len(train_set),
    )


def train(
    *,
    objective: Objective,
    customers: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    settings: Settings,
    learner: LearnerSettings | None = None,
    contact_policy: ContactPolicySettings | None = None,
    test_fraction: float = 0.25,
    force: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> TrainResult:
    """Train, evaluate, log and register a policy for ``objective`` from the history tables."""
    learner = learner or LearnerSettings(seed=settings.seed)
    step = progress or (lambda _what, _share: None)
    ev = fit_and_evaluate(
        objective=objective,
        customers=customers,
        contacts=contacts,
        events=events,
        settings=settings,
        learner=learner,
        contact_policy=contact_policy,
        test_fraction=test_fraction,
        progress=progress,
    )
    table, dists, test_set = ev.table, ev.dists, ev.test_set
    candidate = max(LEARNED, key=lambda n: _value(table, n, "dr") if n in dists else -np.inf)
    metrics = _metrics(table, dists, ev.outcome_metrics, ev.prop_info, ev.n_train, len(test_set))
    step("logging to MLflow", 0.85)
    client = connect(settings)
    mlflow.set_experiment(experiment_id=experiment_for(f"objective/{objective.id}", settings))
    with mlflow.start_run(run_name=f"{objective.id} v{objective.version}") as run:
        mlflow.log_params(_params(objective, learner, candidate, test_fraction))
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            frame = table.to_frame()
            frame.to_csv(workdir / "ope_table.csv", index=False)
            plots.policy_values(frame, workdir / "ope_values.png")
            plots.feature_importance(
                ev.candidates.reward_model.feature_importances(),
                workdir / "feature_importance.png",
            )
            report = {**ev.data.report, "warnings": ev.notes}
            (workdir / "training_report.json").write_text(json.dumps(report, indent=2, default=str))
            mlflow.log_artifacts(str(workdir), artifact_path="evaluation")
            bundle = PolicyBundle(
                policy=ev.candidates.policies[candidate],
                objective_id=objective.id,
                objective_version=objective.version,
                action_keys=test_set.actions.keys,
                attribute_names=tuple(test_set.attributes.columns),
                learner=candidate,
                metrics={k: v for k, v in metrics.items() if k.startswith(candidate)},
            )
            info = log_policy(
                bundle,
                example=ev.test_batch.context(0),
                workdir=workdir,
                registered_model_name=objective.id,
            )
        version = str(info.registered_model_version)
        champion_dr = _value(table, CHAMPION, "dr") if CHAMPION in dists else None
        candidate_low = _ci_low(table, candidate, "dr")
        client.set_model_version_tag(objective.id, version, "dr_ci_low", f"{candidate_low:.6f}")
        client.set_model_version_tag(
            objective.id, version, "dr", f"{_value(table, candidate, 'dr'):.6f}"
        )
        promotion = promote(
            client,
            objective.id,
            version,
            candidate_ci_low=candidate_low,
            champion_value=champion_dr,
            candidate_value=_value(table, candidate, "dr"),
            fallback_value=_value(table, FALLBACK_POLICY, "dr")
            if FALLBACK_POLICY in dists
            else None,
            force=force,
        )
        mlflow.set_tags({"promotion": promotion.alias, "promotion_reason": promotion.reason})
    step("done", 1.0)
    return TrainResult(
        run_id=run.info.run_id,
        objective_id=objective.id,
        candidate=candidate,
        model_version=version,
        promotion=promotion,
        table=table.to_frame(),
        metrics=metrics,
        warnings=ev.notes,
        report=report,
    )


@contextmanager
def _predictions_reused(model: RewardModel) -> Iterator[None]:
    """While the block runs, ``model.predict`` of a batch it already scored returns a copy.

    A large batch is scored in parts on several threads (the trees are walked outside the GIL).
    """
    original = model.predict
    memo: dict[int, tuple[Any, np.ndarray]] = {}

    def predict(batch: Any) -> np.ndarray:
        hit = memo.get(id(batch))
        if hit is None or hit[0] is not batch:
            hit = memo[id(batch)] = (batch, _predict_in_parts(original, batch))
        return hit[1].copy()

    model.predict = predict  # type: ignore[method-assign]
    try:
        yield
    finally:
        del model.predict


_MIN_PARALLEL_ROWS = 20_000


def _predict_in_parts(predict: Callable[[Any], np.ndarray], batch: Any) -> np.ndarray:
    """``predict(batch)``, in parts on as many threads as there are cores (up to 4)."""
    parts = min(os.cpu_count() or 1, 4)
    if len(batch) < _MIN_PARALLEL_ROWS or parts < 2:
        return predict(batch)
    cuts = np.linspace(0, len(batch), parts + 1).astype(int)
    with ThreadPoolExecutor(parts) as pool:
        scored = pool.map(
            lambda lo_hi: predict(batch.select(np.arange(*lo_hi))),
            zip(cuts, cuts[1:], strict=False),
        )
        return np.concatenate(list(scored))


def _conversion_metrics(
    train_batch: Any,
    test_batch: Any,
    train_set: TrainingSet,
    test_set: TrainingSet,
    learner: LearnerSettings,
    notes: list[str],
) -> dict[str, float]:
    """How well conversions can be predicted (AUC, log loss, Brier) on the hold-out period.

    A classifier of the conversion indicator, fitted on at most ``_METRIC_ROWS`` training
    decisions: the figures describe the data, nothing is served from it.
    """
    conversion = train_set.rewards.conversion
    if conversion.min() == conversion.max():
        notes.append(
            "conversion metrics not computed: every training decision has the same outcome"
        )
        return {}
    rows = np.arange(len(train_set))
    if len(rows) > _METRIC_ROWS:
        rows = np.sort(
            np.random.default_rng(learner.seed).choice(rows, _METRIC_ROWS, replace=False)
        )
    model = RewardModel(random_state=learner.seed, task="binary", n_jobs=learner.threads).fit(
        _with_reward(train_batch.select(rows), conversion[rows])
    )
    return model.evaluate(_with_reward(test_batch, test_set.rewards.conversion))


def _with_reward(batch: Any, reward: np.ndarray) -> Any:
    from dataclasses import replace

    return replace(batch, reward=np.asarray(reward, dtype=float))


def _value(table: OPETable, policy: str, estimator: str) -> float:
    return float(table.get(policy, estimator).value)


def _ci_low(table: OPETable, policy: str, estimator: str) -> float:
    return float(table.get(policy, estimator).ci_low)


def _metrics(
    table: OPETable,
    dists: dict[str, np.ndarray],
    outcome: dict[str, float],
    prop_info: dict[str, Any],
    n_train: int,
    n_test: int,
) -> dict[str, float]:
    out: dict[str, float] = {"n_train": float(n_train), "n_test": float(n_test)}
    for policy in dists:
        for est in ("ips", "snips", "dm", "dr"):
            e = table.get(policy, est)
            out[f"{policy}.{est}"] = float(e.value)
            out[f"{policy}.{est}.ci_low"] = float(e.ci_low)
            out[f"{policy}.{est}.ci_high"] = float(e.ci_high)
        out[f"{policy}.ess"] = float(table.get(policy, "dr").ess)
    out.update({f"outcome_model.{k}": float(v) for k, v in outcome.items()})
    overlap = prop_info["overlap"]
    out["overlap.ess"] = float(overlap["ess"])
    out["overlap.max_weight"] = float(overlap["max_weight"])
    out["propensity.estimated_share"] = float(prop_info["estimated_share"])
    return {k: v for k, v in out.items() if np.isfinite(v)}


def _params(
    objective: Objective, learner: LearnerSettings, candidate: str, test_fraction: float
) -> dict[str, Any]:
    params = {f"learner.{k}": v for k, v in learner.__dict__.items() if k != "extra"}
    params.update(
        {
            "objective.id": objective.id,
            "objective.version": objective.version,
            "objective.kind": objective.kind,
            "objective.window_days": objective.attribution_window_days,
            "candidate": candidate,
            "test_fraction": test_fraction,
        }
    )
    return params
