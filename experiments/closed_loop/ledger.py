"""What an arm decided and what became of it: one row per decision of the objective.

The ledger is the experiment's own record, beside the service's decision log: it keeps, for
every decision, the ground truth of the world at that moment (value of the action taken, of
doing nothing, and of the best eligible action), so an arm can be scored against the truth
that the service never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SCHEDULED, SENT, CANCELLED, NOTHING = "scheduled", "sent", "cancelled", "nothing"


@dataclass
class Ledger:
    """Columnar rows of an arm's decisions; ``frame()`` gives them as a table."""

    decision_id: list[str] = field(default_factory=list)
    customer: list[int] = field(default_factory=list)
    day: list[int] = field(default_factory=list)
    decided_at: list[float] = field(default_factory=list)
    action: list[str] = field(default_factory=list)
    channel: list[str] = field(default_factory=list)
    holdout: list[bool] = field(default_factory=list)
    propensity: list[float] = field(default_factory=list)
    model_version: list[str] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    truth_chosen: list[float] = field(default_factory=list)
    truth_nothing: list[float] = field(default_factory=list)
    truth_best: list[float] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    send_at: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.decision_id)

    def add(
        self,
        *,
        decision_id: str,
        customer: int,
        day: int,
        decided_at: float,
        action: str,
        channel: str,
        holdout: bool,
        propensity: float,
        model_version: str,
        cost: float,
        truth: np.ndarray,
        chosen: int,
        eligible: np.ndarray,
    ) -> int:
        """Record a decision with the world's truth at its moment; returns its row."""
        row = len(self.decision_id)
        self.rows[decision_id] = row
        self.decision_id.append(decision_id)
        self.customer.append(int(customer))
        self.day.append(int(day))
        self.decided_at.append(float(decided_at))
        self.action.append(action)
        self.channel.append(channel)
        self.holdout.append(bool(holdout))
        self.propensity.append(float(propensity))
        self.model_version.append(model_version)
        self.cost.append(float(cost))
        self.truth_chosen.append(float(truth[chosen]))
        self.truth_nothing.append(float(truth[0]))
        self.truth_best.append(float(np.max(np.where(eligible, truth, -np.inf))))
        self.status.append(NOTHING if action == "none" else SCHEDULED)
        self.send_at.append(np.nan)
        self.reward.append(np.nan)
        return row

    def sent(self, decision_id: str, send_at: float) -> None:
        row = self.rows[decision_id]
        self.status[row] = SENT
        self.send_at[row] = float(send_at)

    def cancelled(self, decision_id: str) -> None:
        """The contact did not go out: what was done is doing nothing."""
        row = self.rows[decision_id]
        self.status[row] = CANCELLED
        self.truth_chosen[row] = self.truth_nothing[row]

    def unrewarded_before(self, cutoff: float) -> np.ndarray:
        """Rows decided at or before ``cutoff`` that have no reward yet."""
        decided = np.asarray(self.decided_at)
        reward = np.asarray(self.reward)
        return np.flatnonzero((decided <= cutoff) & np.isnan(reward))

    def frame(self) -> pd.DataFrame:
        """The rows as a table (one column per field)."""
        names = [
            "decision_id", "customer", "day", "decided_at", "action", "channel", "holdout",
            "propensity", "model_version", "cost", "truth_chosen", "truth_nothing",
            "truth_best", "status", "send_at", "reward",
        ]  # fmt: skip
        return pd.DataFrame({name: getattr(self, name) for name in names})
