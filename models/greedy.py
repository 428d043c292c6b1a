"""The greedy policy: the action with the best predicted net value, with epsilon exploration."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from decisioning.policy import DecisionContext, epsilon_greedy
from models.baselines import BasePolicy
from models.encoding import BanditBatch, context_costs
from models.outcome import RewardModel


class GreedyPolicy(BasePolicy):
    """Epsilon-greedy over the eligible actions, on a reward model's predictions.

    The value of an action is the model's expected gross reward minus the action's cost
    (``subtract_costs=True``, for a model of gross outcomes such as :class:`RewardModel`), or
    the prediction as is when the model already predicts net value. The best contact is chosen
    only when its value beats doing nothing's by more than ``margin``; otherwise, and on ties,
    the policy does nothing.

    Parameters
    ----------
    reward_model : RewardModel
        A fitted model with ``predict(batch) -> (n, n_actions)``.
    epsilon : float
        Probability mass spread uniformly over the eligible actions.
    margin : float
        How much more than doing nothing a contact must be predicted to be worth before it is
        chosen: a guard against the model's noise (``training.fit`` tunes it off-policy).
    """

    #: policies saved before the margin existed load with none
    margin: float = 0.0

    def __init__(
        self,
        reward_model: RewardModel,
        *,
        epsilon: float = 0.0,
        margin: float = 0.0,
        subtract_costs: bool = True,
        seed: int = 0,
        name: str = "greedy",
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        if not margin >= 0.0:
            raise ValueError(f"margin must be a number >= 0, got {margin}")
        self.reward_model = reward_model
        self.epsilon = epsilon
        self.margin = margin
        self.subtract_costs = subtract_costs
        self.seed, self.name = seed, name

    def compile(self, cache_dir: str | Path | None = None) -> bool:
        """Compile the reward model's trees to native code (same values, faster); see
        :meth:`models.outcome.RewardModel.compile`."""
        return self.reward_model.compile(cache_dir)

    def values(self, batch: BanditBatch) -> np.ndarray:
        """Expected net value of every action in every context, shape (n, n_actions)."""
        pred = self.reward_model.predict(batch)
        return pred - batch.costs if self.subtract_costs else pred

    def expected_values(self, context: DecisionContext) -> np.ndarray:
        pred = self.reward_model.predict_context(context)
        return pred - context_costs(context) if self.subtract_costs else pred

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        return self.distribution_and_values(context)[0]

    def distribution_and_values(self, context: DecisionContext) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`action_distribution` and :meth:`expected_values` from one prediction."""
        values = self.expected_values(context)
        eligible = np.asarray(context.eligible, dtype=bool)
        scores = values - self._margins(len(values)) if self.margin else values
        return epsilon_greedy(scores, eligible, self.epsilon), values

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        return self.distributions_and_values(batch)[0]

    def distributions_and_values(self, batch: BanditBatch) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`action_distributions` and :meth:`values` from one prediction per context."""
        values = self.values(batch)
        return self.distributions_of(values, batch.eligible), values

    def distributions_of(self, values: np.ndarray, eligible: np.ndarray) -> np.ndarray:
        """The policy's distributions given every action's value, shape (n, n_actions)."""
        return greedy_distributions(values, eligible, epsilon=self.epsilon, margin=self.margin)

    def _margins(self, n_actions: int) -> np.ndarray:
        return _margins(n_actions, self.margin)


def greedy_distributions(
    values: np.ndarray, eligible: np.ndarray, *, epsilon: float = 0.0, margin: float = 0.0
) -> np.ndarray:
    """Epsilon-greedy distributions over ``values`` (n, n_actions), contacts held to ``margin``."""
    dist = eligible * (epsilon / eligible.sum(axis=1, keepdims=True))
    scores = values - _margins(values.shape[1], margin) if margin else values
    best = np.argmax(np.where(eligible, scores, -np.inf), axis=1)
    dist[np.arange(len(values)), best] += 1.0 - epsilon
    return dist


def _margins(n_actions: int, margin: float) -> np.ndarray:
    """What each action's value must beat by: the margin, except doing nothing (index 0)."""
    margins = np.full(n_actions, margin)
    margins[0] = 0.0
    return margins
