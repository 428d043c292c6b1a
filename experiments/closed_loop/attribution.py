"""The nightly reward job: rewards of decisions whose attribution window has passed.

A decision's reward is what training uses (:func:`training.rewards.attribute_rewards`): the
conversion value within the window, minus the action's cost, minus the fatigue penalties of the
unsubscribes and complaints within the window. It is written on the decision log with source
``attributed``, where the objective's report reads it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from decisioning.objectives import Objective
from decisioning.store import Store
from experiments.closed_loop.feed import moment
from experiments.closed_loop.ledger import Ledger
from training.rewards import RewardParts, attribute_rewards

SOURCE = "attributed"


def rewards_of(
    *,
    customer_ids: np.ndarray,
    ts: np.ndarray,
    cost: np.ndarray,
    events: pd.DataFrame,
    objective: Objective,
) -> RewardParts:
    """Rewards of decisions for ``customer_ids`` (strings) at epoch seconds ``ts``."""
    codes = {cid: i for i, cid in enumerate(np.unique(customer_ids))}
    return attribute_rewards(
        customer=np.array([codes[c] for c in customer_ids], dtype=np.int64),
        ts=np.asarray(ts, dtype=float),
        cost=np.asarray(cost, dtype=float),
        events=events,
        outcome_type=objective.outcome.event_type.value,
        outcome_category=objective.outcome.category,
        reduce=objective.kind == "reduce",
        value_per_conversion=objective.conversion_value(),
        value_from_event=objective.value_from_event,
        window_days=objective.attribution_window_days,
        unsubscribe_penalty=objective.fatigue_penalties.unsubscribe,
        complaint_penalty=objective.fatigue_penalties.complaint,
        customer_codes=codes,
    )


def attribute_due(
    *,
    ledger: Ledger,
    store: Store,
    events: pd.DataFrame,
    objective: Objective,
    customer_ids: np.ndarray,
    now: float,
) -> int:
    """Reward every decision whose window closed by ``now``; how many were rewarded.

    ``events`` must hold every event up to ``now``; ``customer_ids[i]`` is the id of customer
    index ``i``. A contact cancelled at send time is charged its cost like a sent one, so that
    the report's rule (a conversion is a reward above minus the cost) holds for every decision.
    """
    cutoff = now - objective.attribution_window_days * 86_400.0
    rows = ledger.unrewarded_before(cutoff)
    if len(rows) == 0:
        return 0
    customers = customer_ids[np.asarray(ledger.customer)[rows]]
    parts = rewards_of(
        customer_ids=customers,
        ts=np.asarray(ledger.decided_at)[rows],
        cost=np.asarray(ledger.cost)[rows],
        events=events,
        objective=objective,
    )
    at = moment(now)
    for row, reward in zip(rows.tolist(), parts.reward.tolist(), strict=True):
        store.set_reward(ledger.decision_id[row], float(reward), SOURCE, at=at)
        ledger.reward[row] = float(reward)
    return len(rows)
