"""How the learned arm learns: its nightly training set, training run and promotion.

Every night the learned arm trains on its own decision log plus the warm-up history, through
the same pipeline as ``decisioning train`` (``training.pipeline.train``: MLflow run, registry,
promotion gate), into the arm's own MLflow store; the engine then reloads the champion.

Only decisions whose attribution window has passed are examples (a younger decision would count
as a non-conversion only because its conversions have not happened yet), and only those of the
last ``train_days`` days, which keeps a night's training bounded. Every message sent, older or
younger, still counts in the replayed customer states.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from decisioning.channels import Channel
from decisioning.fatigue import DAY
from decisioning.guardrails import ContactPolicy, ContactPolicySettings
from decisioning.objectives import Objective
from decisioning.settings import Settings
from decisioning.store import LoggedDecision, Store
from experiments.simulator import Simulator
from experiments.simulator.tables import TEXT_DTYPE, events_frame
from models.baselines import BestSingleChannelPolicy
from training.dataset import build_training_set
from training.fit import LearnerSettings, to_batch

#: objective of the rows that only replay as history (sends outside the examples' period)
HISTORY_ONLY = "__history__"


@dataclass(frozen=True)
class Night:
    """What one night's training run did."""

    day: int
    examples: int
    model_version: str
    candidate: str
    promoted: bool
    reason: str
    seconds: float


def examples_period(*, now: float, objective: Objective, train_days: float) -> tuple[float, float]:
    """Decisions made in ``[start, end]`` are the examples of a run at ``now``."""
    return now - train_days * DAY, now - objective.attribution_window_days * DAY


def log_contacts(decisions: Iterable[LoggedDecision], objective: Objective) -> pd.DataFrame:
    """The service's logged decisions as contacts-table rows: sends, and decisions to do nothing.

    Held-out decisions (no choice was made) and contacts that never went out are left out.
    """
    rows = []
    for logged in decisions:
        d = logged.decision
        if d.holdout or d.objective_id != objective.id:
            continue
        nothing = d.action.is_nothing
        if not nothing and logged.status not in ("sent", "delivered"):
            continue
        channel = d.action.channel.value
        rows.append(
            {
                "contact_id": d.decision_id,
                "customer_id": d.customer_id,
                "ts": d.decided_at,
                "channel": channel,
                "slot": "now" if nothing else d.action.slot.value,
                "send_at": d.send_at or d.decided_at,
                "objective": objective.id,
                "cost": objective.cost_of(channel),
                "propensity": d.propensity,
                "decision_id": d.decision_id,
                "category": None if nothing else objective.outcome.category,
            }
        )
    return _typed(pd.DataFrame(rows, columns=_CONTACT_COLUMNS))


_CONTACT_COLUMNS = [
    "contact_id", "customer_id", "ts", "channel", "slot", "send_at", "objective", "cost",
    "propensity", "decision_id", "category",
]  # fmt: skip


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in ("ts", "send_at"):
        out[col] = pd.to_datetime(out[col], utc=True)
    for col in ("contact_id", "customer_id", "channel", "slot", "objective", "decision_id"):
        out[col] = out[col].astype(TEXT_DTYPE)
    out["category"] = out["category"].astype(TEXT_DTYPE)
    for col in ("cost", "propensity"):
        out[col] = out[col].astype(float)
    return out


def restrict_examples(
    contacts: pd.DataFrame, *, objective: Objective, start: float, end: float
) -> pd.DataFrame:
    """Keep the objective's decisions of ``[start, end]`` as examples, the other sends as history."""
    ts = contacts["ts"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    mine = contacts["objective"].fillna("").astype(str) == objective.id
    example = mine & (ts >= start) & (ts <= end)
    send = contacts["channel"].astype(str) != Channel.NONE.value
    out = contacts[example | send].copy()
    out.loc[~example[example | send], "objective"] = HISTORY_ONLY
    return out.reset_index(drop=True)


class TrainingData:
    """The tables a night's training reads: customers, contacts and events of one world.

    Parameters
    ----------
    sim : Simulator
        The arm's world (its events so far are the event table).
    customers : DataFrame
        The customers table (it does not change during the loop).
    warmup_contacts : DataFrame
        The warm-up history's contacts (uniform logging, propensities logged).
    """

    def __init__(
        self, sim: Simulator, *, customers: pd.DataFrame, warmup_contacts: pd.DataFrame
    ) -> None:
        self.sim = sim
        self.customers = customers
        self.warmup_contacts = warmup_contacts

    def frames(
        self, *, objective: Objective, store: Store | None, now: float, train_days: float
    ) -> dict[str, pd.DataFrame]:
        """The tables for a run at ``now``: warm-up history plus the arm's own log."""
        parts = [self.warmup_contacts]
        if store is not None:
            logged = log_contacts(store.iter_decisions(objective.id), objective)
            if len(logged):
                parts.append(logged)
        contacts = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        start, end = examples_period(now=now, objective=objective, train_days=train_days)
        return {
            "customers": self.customers,
            "contacts": restrict_examples(contacts, objective=objective, start=start, end=end),
            "events": events_frame(self.sim),
        }


def contact_policy(objective: Objective) -> ContactPolicy:
    """The contact policy the engine applies to the objective (defaults and its overrides)."""
    settings = ContactPolicySettings()
    if objective.guardrails:
        settings = settings.merged(objective.guardrails)
    return ContactPolicy(settings)


def fit_best_single_channel(
    frames: dict[str, pd.DataFrame], *, objective: Objective, seed: int
) -> BestSingleChannelPolicy:
    """The best single channel@slot action on the warm-up history (by inverse propensity)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = build_training_set(
            **frames, objective=objective, policy=contact_policy(objective), seed=seed
        )
    return BestSingleChannelPolicy(seed=seed).fit(to_batch(data))


def train_night(
    *,
    day: int,
    frames: dict[str, pd.DataFrame],
    objective: Objective,
    settings: Settings,
    learner: LearnerSettings,
) -> Night:
    """One nightly run of the training pipeline into the arm's MLflow store."""
    from training.pipeline import train

    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(objective=objective, **frames, settings=settings, learner=learner)
    return Night(
        day=day,
        examples=int(result.metrics.get("n_train", 0) + result.metrics.get("n_test", 0)),
        model_version=result.model_version,
        candidate=result.candidate,
        promoted=result.promotion.promoted,
        reason=result.promotion.reason,
        seconds=time.perf_counter() - started,
    )
