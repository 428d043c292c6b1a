"""Training examples from behavioural history: one logged bandit example per decision.

History is replayed customer by customer in time order through the same ``CustomerState`` and
feature code the service uses online, so the example of a decision taken at time t is built from
what happened strictly before t (point-in-time correct).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from decisioning.actions import ActionSpace, Slot
from decisioning.channels import Channel
from decisioning.errors import LearningError
from decisioning.fatigue import DAY
from decisioning.guardrails import ContactPolicy
from decisioning.history_replay import epoch_seconds
from decisioning.objectives import Objective
from training.replay import Replay
from training.rewards import RewardParts, attribute_rewards


@dataclass(frozen=True)
class TrainingSet:
    """Logged decisions of one objective as columnar arrays (n decisions, A actions).

    ``pscore`` is NaN where the history did not log the propensity (a legacy campaign).
    """

    objective_id: str
    actions: ActionSpace
    customer_ids: np.ndarray  # (n,) str
    decision_ids: np.ndarray  # (n,) str: the contact (decision) each example comes from
    ts: np.ndarray  # (n,) epoch seconds of the decision
    customer: np.ndarray  # (n, len(BEHAVIOUR_FEATURES)) float32
    attributes: pd.DataFrame  # (n, k) customer attribute columns
    action_features: np.ndarray  # (n, A, len(ACTION_FEATURES)) float32
    eligible: np.ndarray  # (n, A) bool
    costs: np.ndarray  # (n, A) float
    action: np.ndarray  # (n,) int
    pscore: np.ndarray  # (n,) float
    rewards: RewardParts
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def reward(self) -> np.ndarray:
        return self.rewards.reward

    def __len__(self) -> int:
        return len(self.action)

    def select(self, mask: np.ndarray) -> TrainingSet:
        """The examples where ``mask`` is True (a boolean or index array)."""
        rp = self.rewards
        return TrainingSet(
            objective_id=self.objective_id,
            actions=self.actions,
            customer_ids=self.customer_ids[mask],
            decision_ids=self.decision_ids[mask],
            ts=self.ts[mask],
            customer=self.customer[mask],
            attributes=self.attributes.iloc[
                np.flatnonzero(mask) if mask.dtype == bool else mask
            ].reset_index(drop=True),
            action_features=self.action_features[mask],
            eligible=self.eligible[mask],
            costs=self.costs[mask],
            action=self.action[mask],
            pscore=self.pscore[mask],
            rewards=RewardParts(*(getattr(rp, f)[mask] for f in RewardParts.__slots__)),
            report=dict(self.report),
        )

    def split_by_time(self, test_fraction: float = 0.25) -> tuple[TrainingSet, TrainingSet]:
        """A time-based split: the latest ``test_fraction`` of decisions are held out."""
        if not 0 < test_fraction < 1:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        cut = float(np.quantile(self.ts, 1 - test_fraction))
        return self.select(self.ts < cut), self.select(self.ts >= cut)


def _epoch(series: pd.Series) -> np.ndarray:
    return epoch_seconds(series)


def decision_moments(
    contacts: pd.DataFrame,
    *,
    objective: Objective,
    sample_nothing: bool | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The decisions to learn from: the objective's contacts, plus sampled do-nothing moments.

    Legacy history logs only what was sent; then (or with ``sample_nothing=True``) moments
    without any contact within a day are sampled as do-nothing decisions, as many as there are
    contacts.
    """
    logged_for = contacts["objective"].fillna("").astype(str)
    mine = contacts[(logged_for == "") | (logged_for == objective.id)]
    report: dict[str, Any] = {"logged_decisions": len(mine)}
    if mine.empty and not contacts.empty:
        # Logged feedback stays valid for another objective: the propensities describe the
        # logging policy, and the reward is recomputed for this objective's outcome.
        mine = contacts
        report["logged_decisions"] = len(mine)
        report["note"] = "no decision logged for this objective: learning from all decisions"
    has_nothing = bool((mine["channel"] == Channel.NONE.value).any())
    if sample_nothing is None:
        sample_nothing = not has_nothing
    if not sample_nothing or mine.empty:
        report["sampled_do_nothing"] = 0
        return mine, report
    rng = np.random.default_rng(seed)
    ts = _epoch(mine["ts"])
    start, end = ts.min(), ts.max()
    customers = mine["customer_id"].to_numpy()
    cand_customer = rng.choice(customers, size=len(mine) * 2)
    cand_ts = rng.uniform(start, end, size=len(cand_customer))
    # keep only candidates with no contact of the same customer within a day either side
    order = np.lexsort((ts, customers))
    keys = np.rec.fromarrays([customers[order], ts[order]], formats=None, names="c,t")
    lo = np.searchsorted(
        keys, np.rec.fromarrays([cand_customer, cand_ts - DAY], formats=None, names="c,t")
    )
    hi = np.searchsorted(
        keys, np.rec.fromarrays([cand_customer, cand_ts + DAY], formats=None, names="c,t")
    )
    keep = np.flatnonzero(hi == lo)[: len(mine)]
    sampled = pd.DataFrame(
        {
            "contact_id": [f"sampled-{i}" for i in range(len(keep))],
            "customer_id": cand_customer[keep],
            "ts": pd.to_datetime(cand_ts[keep], unit="s", utc=True),
            "channel": Channel.NONE.value,
            "slot": Slot.NOW.value,
            "send_at": pd.to_datetime(cand_ts[keep], unit="s", utc=True),
            "objective": objective.id,
            "cost": 0.0,
            "propensity": np.nan,
            "decision_id": None,
        }
    )
    report["sampled_do_nothing"] = len(sampled)
    return pd.concat(
        [mine, sampled[mine.columns.intersection(sampled.columns)]], ignore_index=True
    ), report


def build_training_set(
    *,
    customers: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    objective: Objective,
    policy: ContactPolicy,
    sample_nothing: bool | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> TrainingSet:
    """Replay the history and build one example per decision of ``objective``.

    ``workers`` processes replay disjoint sets of customers (by default as many as there are
    cores, up to 4, when the history is large); the examples do not depend on it.

    Raises ``LearningError`` when the history holds no usable decision for the objective, or
    when a reduce objective has no value per conversion (one stored before that was checked).
    """
    if not objective.values_its_outcome:
        raise LearningError(
            f"objective {objective.id!r}: value_per_conversion is needed to value each "
            f"prevented {objective.outcome.event_type.value} (a reduction has no event whose "
            f"value could be read); edit the objective to give it"
        )
    moments, report = decision_moments(
        contacts, objective=objective, sample_nothing=sample_nothing, seed=seed
    )
    actions = objective.action_space()
    replay = Replay(customers=customers, contacts=contacts, events=events, moments=moments)
    built = replay.run(
        objective=objective, actions=actions, policy=policy, progress=progress, workers=workers
    )
    report.update(built.pop("report"))
    n = len(built["action"])
    if n == 0:
        raise LearningError(
            f"objective {objective.id!r}: no usable decision in the history "
            f"(skipped: {report.get('skipped', {})})"
        )
    codes = {cid: i for i, cid in enumerate(np.unique(built["customer_ids"]))}
    parts = attribute_rewards(
        customer=np.array([codes[c] for c in built["customer_ids"]], dtype=np.int64),
        ts=built["ts"],
        cost=built["cost"],
        events=events,
        outcome_type=objective.outcome.event_type.value,
        outcome_category=objective.outcome.category,
        reduce=objective.kind == "reduce",
        value_per_conversion=objective.value_per_conversion or 0.0,  # unused if from events
        value_from_event=objective.value_from_event,
        window_days=objective.attribution_window_days,
        unsubscribe_penalty=objective.fatigue_penalties.unsubscribe,
        complaint_penalty=objective.fatigue_penalties.complaint,
        customer_codes=codes,
    )
    report["examples"] = n
    return TrainingSet(
        objective_id=objective.id,
        actions=actions,
        customer_ids=built["customer_ids"],
        decision_ids=built["decision_ids"],
        ts=built["ts"],
        customer=built["customer"],
        attributes=built["attributes"],
        action_features=built["action_features"],
        eligible=built["eligible"],
        costs=built["costs"],
        action=built["action"],
        pscore=built["pscore"],
        rewards=parts,
        report=report,
    )
