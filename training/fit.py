"""Fitting the candidate policies of a training run from a training set."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from decisioning.policy import Policy
from models.baselines import BestSingleChannelPolicy, DoNothingPolicy, RandomPolicy, WaterfallPolicy
from models.encoding import BanditBatch
from models.greedy import GreedyPolicy
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
    n_estimators: int = 600
    learning_rate: float = 0.025
    num_leaves: int = 5
    min_child_samples: int = 500
    seed: int = 0
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Candidates:
    """What a run fits: the reward model and every policy it compares."""

    reward_model: RewardModel
    policies: dict[str, Policy]
    #: seconds each model took to fit, by name ("reward_model", "vw_bandit", ...)
    seconds: dict[str, float] = field(default_factory=dict)


def fit_candidates(
    train: BanditBatch, settings: LearnerSettings, *, with_vw: bool = True
) -> Candidates:
    """Fit the reward model, the learned policies and the baselines on ``train``."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    reward_model = RewardModel(
        n_estimators=settings.n_estimators,
        learning_rate=settings.learning_rate,
        num_leaves=settings.num_leaves,
        min_child_samples=settings.min_child_samples,
        random_state=settings.seed,
    ).fit(train)
    seconds["reward_model"] = time.perf_counter() - start
    policies: dict[str, Policy] = {
        "lightgbm_greedy": GreedyPolicy(
            reward_model,
            epsilon=settings.greedy_epsilon,
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
    return Candidates(reward_model=reward_model, policies=policies, seconds=seconds)
