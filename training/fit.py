"""Fitting the candidate policies of a training run from a training set."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from decisioning.errors import LearningError
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from decisioning.policy import Policy
from models.baselines import BestSingleChannelPolicy, DoNothingPolicy, RandomPolicy, WaterfallPolicy
from models.encoding import BanditBatch
from models.greedy import GreedyPolicy, greedy_distributions
from models.outcome import RewardModel
from models.vw_bandit import VWBandit
from training.dataset import TrainingSet


def to_batch(data: TrainingSet, pscore: np.ndarray | None = None) -> BanditBatch:
    """The training set as the learners' batch; rewards are gross (learners subtract costs)."""
    attributes = {
        col: data.attributes[col].to_numpy(dtype=object) for col in data.attributes.columns
    }
    gross = data.reward + data.rewards.cost
    return BanditBatch(
        actions=data.actions,
        customer_names=BEHAVIOUR_FEATURES,
        action_feature_names=ACTION_FEATURES,
        customer=data.customer,
        attributes=attributes,
        action_features=data.action_features,
        eligible=data.eligible,
        costs=data.costs,
        customer_ids=data.customer_ids,
        now=data.ts,
        action=data.action,
        reward=gross,
        pscore=data.pscore if pscore is None else pscore,
    )


@dataclass(frozen=True)
class LearnerSettings:
    """Hyperparameters of a training run's learners (logged to MLflow as parameters).

    The defaults are tuned on simulated histories (``experiments/bench_quality.py``): logged
    rewards are rare conversions worth far more than a contact costs, so the reward model is
    kept small and slow (5 leaves of at least 500 rows, 600 trees at rate 0.025) lest the
    greedy policy chase noise, and VW learns slowly over a few passes for the same reason.
    """

    exploration: str = "epsilon"
    epsilon: float = 0.02
    vw_passes: int = 2
    vw_learning_rate: float = 0.05
    greedy_epsilon: float = 0.01
    #: how much more than doing nothing a contact must be worth to the greedy policy; None:
    #: tuned off-policy on the latest ``margin_validation`` share of the training decisions
    #: (:func:`tune_margin`; measured in ``experiments/bench_quality.py``, it saves a model that
    #: cannot tell who gains from a contact but, on small histories, also holds back good ones)
    greedy_margin: float | None = 0.0
    margin_validation: float = 0.2
    n_estimators: int = 600
    learning_rate: float = 0.025
    num_leaves: int = 5
    min_child_samples: int = 500
    seed: int = 0
    #: threads the reward model trains on; 0: one per core (the fit is the same either way)
    n_jobs: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        """The reward model's training threads: ``n_jobs``, or the cores this process may use."""
        if self.n_jobs > 0:
            return self.n_jobs
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1


@dataclass
class Candidates:
    """What a run fits: the reward model and every policy it compares."""

    reward_model: RewardModel
    policies: dict[str, Policy]
    #: seconds each model took to fit, by name ("reward_model", "vw_bandit", ...)
    seconds: dict[str, float] = field(default_factory=dict)
    #: what was tuned on the training data, e.g. the greedy policy's margin
    tuning: dict[str, float] = field(default_factory=dict)


#: contact shares of the validation decisions whose margins the tuning compares
_CONTACT_SHARES = (0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.02, 0.01)
_MIN_VALIDATION = 200
#: a margin replaces 0 only when its DR gain over it is this many standard errors above 0
_MARGIN_Z = 1.0


def _reward_model(settings: LearnerSettings) -> RewardModel:
    return RewardModel(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        num_leaves=settings.num_leaves,
        min_child_samples=settings.min_child_samples,
        n_jobs=settings.threads,
        random_state=settings.seed,
    )


def tune_margin(
    train: BanditBatch, settings: LearnerSettings
) -> tuple[float, dict[str, float]] | None:
    """The greedy policy's margin, chosen off-policy on held-out decisions.

    A reward model is fitted on the earlier decisions of ``train``; on the latest
    ``settings.margin_validation`` share, the greedy policy is evaluated (doubly robust, net
    of costs) at margins that let it contact from every decision it predicts a gain for down to
    none. A margin replaces 0 only when its paired DR gain over margin 0, less one standard
    error, is positive: the best such lower bound wins. So a model that cannot tell who gains
    from a contact learns to do nothing, and one that can is not held back by noise. None when
    there is too little data.
    """
    cut = float(np.quantile(train.now, 1.0 - settings.margin_validation))
    early, late = np.flatnonzero(train.now < cut), np.flatnonzero(train.now >= cut)
    if len(late) < _MIN_VALIDATION or len(early) < _MIN_VALIDATION:
        return None
    fit, validation = train.select(early), train.select(late)
    try:
        model = _reward_model(settings).fit(fit)
    except LearningError:
        return None
    values = model.predict(validation) - validation.costs
    action, reward, pscore = validation.feedback()
    net = reward - validation.costs[np.arange(len(action)), action]
    return select_margin(
        values, validation.eligible, action=action, net=net, pscore=pscore,
        epsilon=settings.greedy_epsilon,
    )  # fmt: skip


def select_margin(
    values: np.ndarray,
    eligible: np.ndarray,
    *,
    action: np.ndarray,
    net: np.ndarray,
    pscore: np.ndarray,
    epsilon: float = 0.0,
) -> tuple[float, dict[str, float]]:
    """The greedy margin for predicted net ``values`` (n, n_actions), judged on logged decisions.

    ``action``, ``net`` (the logged net reward) and ``pscore`` are the logged decisions; the
    doubly-robust gain of each candidate margin over margin 0 is paired row by row, and a
    margin is kept only when that gain less one standard error is positive.
    """
    gain = np.where(eligible[:, 1:], values[:, 1:], -np.inf).max(axis=1) - values[:, 0]
    ranked = np.sort(gain)[::-1]
    positive = int((gain > 0).sum())
    margins = {0.0, float("inf")}
    for share in _CONTACT_SHARES:
        k = int(share * len(gain))  # about k decisions gain more than the k-th largest gain
        if k < positive:
            margins.add(float(ranked[k]))
    rows = np.arange(len(action))
    residual = (net - values[rows, action]) / pscore

    def dr_terms(margin: float) -> tuple[np.ndarray, float]:
        dist = greedy_distributions(values, eligible, epsilon=epsilon, margin=margin)
        direct = np.where(eligible, dist * values, 0.0).sum(axis=1)
        return direct + dist[rows, action] * residual, float(1.0 - dist[:, 0].mean())

    base, base_share = dr_terms(0.0)
    # (lower bound of the gain over margin 0, gain, margin, contact share)
    best = (0.0, 0.0, 0.0, base_share)
    for margin in sorted(margins - {0.0}):
        terms, share = dr_terms(margin)
        diff = terms - base
        gain_mean = float(diff.mean())
        bound = gain_mean - _MARGIN_Z * float(diff.std(ddof=1)) / np.sqrt(len(diff))
        if bound > best[0]:
            best = (bound, gain_mean, margin, share)
    _, gain_mean, margin, share = best
    return margin, {
        "greedy_margin": margin,
        "greedy_margin_dr_gain": gain_mean,
        "greedy_margin_contact_share": share,
        "greedy_margin_validation_rows": float(len(action)),
    }


def fit_candidates(
    train: BanditBatch, settings: LearnerSettings, *, with_vw: bool = True
) -> Candidates:
    """Fit the reward model, the learned policies and the baselines on ``train``."""
    seconds: dict[str, float] = {}
    tuning: dict[str, float] = {}
    margin = settings.greedy_margin
    if margin is None:
        start = time.perf_counter()
        tuned = tune_margin(train, settings)
        margin = 0.0 if tuned is None else tuned[0]
        tuning = {} if tuned is None else tuned[1]
        seconds["greedy_margin"] = time.perf_counter() - start
    start = time.perf_counter()
    reward_model = _reward_model(settings).fit(train)
    seconds["reward_model"] = time.perf_counter() - start
    policies: dict[str, Policy] = {
        "lightgbm_greedy": GreedyPolicy(
            reward_model,
            epsilon=settings.greedy_epsilon,
            margin=margin,
            seed=settings.seed,
            name="lightgbm_greedy",
        ),
    }
    if with_vw:
        start = time.perf_counter()
        policies["vw_bandit"] = VWBandit(
            exploration=settings.exploration,
            epsilon=settings.epsilon,
            learning_rate=settings.vw_learning_rate,
            passes=settings.vw_passes,
            seed=settings.seed,
        ).fit(train)
        seconds["vw_bandit"] = time.perf_counter() - start
    start = time.perf_counter()
    policies.update(
        {
            "random": RandomPolicy(seed=settings.seed),
            "do_nothing": DoNothingPolicy(seed=settings.seed),
            "best_single_channel": BestSingleChannelPolicy(seed=settings.seed).fit(train),
            "waterfall": WaterfallPolicy(seed=settings.seed),
        }
    )
    seconds["baselines"] = time.perf_counter() - start
    return Candidates(reward_model=reward_model, policies=policies, seconds=seconds, tuning=tuning)
