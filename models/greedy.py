"""The greedy policy: the action with the best predicted net value, with epsilon exploration."""

from __future__ import annotations

import numpy as np

from decisioning.policy import DecisionContext, epsilon_greedy
from models.baselines import BasePolicy
from models.encoding import BanditBatch, context_costs
from models.outcome import RewardModel


class GreedyPolicy(BasePolicy):
    """Epsilon-greedy over the eligible actions, on a reward model's predictions.

    The value of an action is the model's expected gross reward minus the action's cost
    (``subtract_costs=True``, for a model of gross outcomes such as :class:`RewardModel`), or
    the prediction as is when the model already predicts net value. Ties go to the lowest
    index, so doing nothing wins when no contact is predicted to pay for itself.

    Parameters
    ----------
    reward_model : RewardModel
        A fitted model with ``predict(batch) -> (n, n_actions)``.
    epsilon : float
        Probability mass spread uniformly over the eligible actions.
    """

    def __init__(
        self,
        reward_model: RewardModel,
        *,
        epsilon: float = 0.0,
        subtract_costs: bool = True,
        seed: int = 0,
        name: str = "greedy",
    ) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
        self.reward_model = reward_model
        self.epsilon = epsilon
        self.subtract_costs = subtract_costs
        self.seed, self.name = seed, name

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
        return epsilon_greedy(values, eligible, self.epsilon), values

    def action_distributions(self, batch: BanditBatch) -> np.ndarray:
        return self.distributions_and_values(batch)[0]

    def distributions_and_values(self, batch: BanditBatch) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`action_distributions` and :meth:`values` from one prediction per context."""
        values = self.values(batch)
        eligible = batch.eligible
        dist = eligible * (self.epsilon / eligible.sum(axis=1, keepdims=True))
        best = np.argmax(np.where(eligible, values, -np.inf), axis=1)
        dist[np.arange(len(batch)), best] += 1.0 - self.epsilon
        return dist, values
