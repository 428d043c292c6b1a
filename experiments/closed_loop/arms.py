"""The arms of the closed loop: where each arm's engine gets its policy.

Every arm runs the same :class:`~serving.engine.DecisionEngine`; only the
:class:`~serving.engine.PolicySource` differs. ``learned`` serves the MLflow champion of the
arm's own registry (retrained every night), the baselines serve a fixed policy, and ``oracle``
serves a policy that reads the simulated world's ground truth: the best eligible action at
every decision, the ceiling no learner can pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from decisioning.errors import InvalidInput
from decisioning.objectives import Objective
from decisioning.policy import DecisionContext, Policy, ServedPolicy

LEARNED, RANDOM, DO_NOTHING = "learned", "random", "do_nothing"
BEST_SINGLE, WATERFALL, ORACLE = "best_single_channel", "waterfall", "oracle"
#: every arm, in the order tables and plots show them
ARMS: tuple[str, ...] = (LEARNED, RANDOM, DO_NOTHING, BEST_SINGLE, WATERFALL, ORACLE)


class StaticPolicies:
    """Serves one fixed policy for every objective.

    Parameters
    ----------
    policy : Policy
        The policy every decision uses.
    model_version : str
        What the decision log records as the model version.
    """

    def __init__(self, policy: Policy, model_version: str) -> None:
        self._served = ServedPolicy(policy, model_version, fallback=False)

    def policy_for(self, objective: Objective) -> ServedPolicy:
        return self._served

    def reload(self) -> dict[str, Any]:
        """Nothing to reload: the policy never changes."""
        return {}


class TruthBook:
    """Ground-truth values of the decisions about to be taken, by customer and moment.

    The loop fills it with the world's expected net value of every action before the engine
    decides; the oracle reads it back for the context it is asked about.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, float], np.ndarray] = {}

    def fill(self, customer_ids: np.ndarray, ts: np.ndarray, values: np.ndarray) -> None:
        """Replace the book with ``values[i]`` for customer ``customer_ids[i]`` at ``ts[i]``."""
        self._rows = {
            (str(c), float(t)): values[i]
            for i, (c, t) in enumerate(zip(customer_ids, ts, strict=True))
        }

    def values(self, customer_id: str, now: float) -> np.ndarray:
        """The truth for ``customer_id`` at ``now`` (filled before the decision)."""
        row = self._rows.get((customer_id, float(now)))
        if row is None:
            raise InvalidInput(
                f"no ground truth for customer {customer_id!r} at {now}: fill the book first"
            )
        return row


class OraclePolicy:
    """Puts all its mass on the eligible action with the best ground-truth net value.

    It breaks ties towards doing nothing (the lowest index), and is only usable inside the
    simulation whose truth fills its :class:`TruthBook`.
    """

    name = "oracle"

    def __init__(self, truth: TruthBook) -> None:
        self.truth = truth

    def expected_values(self, context: DecisionContext) -> np.ndarray:
        values = self.truth.values(context.customer_id, context.now)
        if values.shape != (len(context.actions),):
            raise InvalidInput(
                f"ground truth has {values.shape} values for {len(context.actions)} actions"
            )
        return values

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        values = self.expected_values(context)
        eligible = np.asarray(context.eligible, dtype=bool)
        out = np.zeros(len(values))
        out[int(np.argmax(np.where(eligible, values, -np.inf)))] = 1.0
        return out
