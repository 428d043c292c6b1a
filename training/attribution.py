"""Rewards of logged decisions, attributed from the stored events once their window has elapsed.

A decision's reward is what :func:`training.rewards.attribute_rewards` computes for a training
example, from the events the store kept: the objective's value times a conversion within the
attribution window after the decision (for a ``reduce`` objective, the outcome *not*
happening), minus the cost of the action under the objective, minus the fatigue penalties of
the customer's unsubscribes and complaints in the window. Only decisions that can be judged are
rewarded: do-nothing ones (holdout included) and contacts whose message went out; a contact
still scheduled waits, and one never sent gets no reward. Rewards are stored with source
``attributed`` and never replace a reward already there (an explicit one reported by the
caller, in particular).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from decisioning.errors import InvalidInput
from decisioning.objectives import Objective
from decisioning.records import EventType
from training.rewards import attribute_rewards

#: event types every attribution reads besides the outcome: the fatigue harm
HARM_TYPES: tuple[str, ...] = (EventType.UNSUBSCRIBE.value, EventType.COMPLAINT.value)
SOURCE = "attributed"


@dataclass(frozen=True)
class AttributionResult:
    """What one attribution run stored.

    ``considered`` decisions had no reward and a window that had elapsed by ``now``;
    ``rewards`` maps each decision rewarded by this run to its reward; ``skipped`` counts the
    considered decisions left without one, by reason.
    """

    now: datetime
    considered: int = 0
    rewards: dict[str, float] = field(default_factory=dict)
    conversions: int = 0
    by_objective: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def attributed(self) -> int:
        return len(self.rewards)


def attribute(
    store: Any,
    *,
    now: datetime,
    objectives: Iterable[str | Objective] | None = None,
    page: int = 20_000,
) -> AttributionResult:
    """Attribute the rewards of the decisions whose attribution window has elapsed by ``now``.

    Parameters
    ----------
    store
        A :class:`decisioning.store.Store`.
    now
        The moment of the run (timezone-aware); windows ending after it are left for later.
    objectives
        The objectives (ids or records) whose decisions to reward; default every stored one.
    page
        Decisions read, attributed and stored at a time; one events query per page.
    """
    if now.tzinfo is None:
        raise InvalidInput("attribute: now must carry a timezone")
    ids = (
        [o.id if isinstance(o, Objective) else str(o) for o in objectives]
        if objectives is not None
        else [doc["id"] for doc in store.list_objectives()]
    )
    tally = _Tally()
    for objective_id in ids:
        versions = {
            o.version: o
            for o in (Objective.model_validate(d) for d in store.objective_versions(objective_id))
        }
        _attribute_objective(store, objective_id, versions, now, page, tally)
    return AttributionResult(
        now=now,
        considered=tally.considered,
        rewards=tally.rewards,
        conversions=tally.conversions,
        by_objective=tally.by_objective,
        skipped=tally.skipped,
    )


@dataclass
class _Tally:
    """What a run has done so far."""

    considered: int = 0
    conversions: int = 0
    rewards: dict[str, float] = field(default_factory=dict)
    by_objective: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, count: int) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def _attribute_objective(
    store: Any,
    objective_id: str,
    versions: dict[int, Objective],
    now: datetime,
    page: int,
    tally: _Tally,
) -> None:
    latest = versions[max(versions)]
    shortest = min(o.attribution_window for o in versions.values())
    after: tuple[datetime, str] | None = None
    while True:
        frame = store.decisions_frame(
            objective_id, until=now - shortest, pending_rewards=True, after=after, limit=page
        )
        if frame.empty:
            return
        after = (frame["decided_at"].iloc[-1].to_pydatetime(), str(frame["decision_id"].iloc[-1]))
        _attribute_page(store, frame, versions, latest, now, tally)
        if len(frame) < page:
            return


def _attribute_page(
    store: Any,
    frame: pd.DataFrame,
    versions: dict[int, Objective],
    latest: Objective,
    now: datetime,
    tally: _Tally,
) -> None:
    """Rewards of one page of pending decisions of one objective, stored in one transaction."""
    version = frame["objective_version"].fillna(latest.version).astype(int).to_numpy()
    known = np.isin(version, list(versions))
    if not known.all():
        tally.skip("objective version not stored", int((~known).sum()))
    days = {v: o.attribution_window_days for v, o in versions.items()}
    window = np.array([days.get(v, np.inf) for v in version.tolist()])
    decided = frame["decided_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
    due = known & (decided + window * 86_400.0 <= now.timestamp())
    unvalued = [v for v, o in versions.items() if not o.values_its_outcome]
    if unvalued:
        held = due & np.isin(version, unvalued)
        if held.any():
            tally.skip(UNVALUED, int(held.sum()))
            due &= ~held
    if not due.any():
        return
    used = sorted(set(version[due].tolist()))
    types = {versions[v].outcome.event_type.value for v in used} | set(HARM_TYPES)
    start = frame["decided_at"][due].min().to_pydatetime()
    end = max(
        frame["decided_at"][due & (version == v)].max().to_pydatetime()
        + versions[v].attribution_window
        for v in used
    )
    events = store.events_frame(start, end + timedelta(microseconds=1), types=types)
    rewards: dict[str, float] = {}
    conversions = 0
    for v in used:
        rows = frame[due & (version == v)]
        parts = _rewards(rows, versions[v], events)
        rewards.update(zip(rows["decision_id"].tolist(), parts.reward.tolist(), strict=True))
        conversions += int(parts.conversion.sum())
    tally.considered += len(rewards)
    stored = set(store.set_rewards(rewards, source=SOURCE, at=now))
    if len(stored) < len(rewards):
        tally.skip("rewarded meanwhile", len(rewards) - len(stored))
    tally.rewards.update({k: v for k, v in rewards.items() if k in stored})
    objective_id = str(frame["objective_id"].iloc[0])
    tally.by_objective[objective_id] = tally.by_objective.get(objective_id, 0) + len(stored)
    tally.conversions += conversions


#: why a reduction's decisions wait: a version stored before value_per_conversion was required
UNVALUED = "reduce objective version without value_per_conversion"


def _rewards(rows: pd.DataFrame, objective: Objective, events: pd.DataFrame) -> Any:
    """:func:`attribute_rewards` of the decisions in ``rows`` under one objective version."""
    codes = {cid: i for i, cid in enumerate(pd.unique(rows["customer_id"]))}
    cost = np.array([objective.cost_of(ch) for ch in rows["channel"].tolist()], dtype=float)
    return attribute_rewards(
        customer=rows["customer_id"].map(codes).to_numpy(dtype=np.int64),
        ts=rows["decided_at"].to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9,
        cost=cost,
        events=_without_small_outcomes(events, objective),
        outcome_type=objective.outcome.event_type.value,
        outcome_category=objective.outcome.category,
        reduce=objective.kind == "reduce",
        value_per_conversion=float(objective.value_per_conversion or 0.0),
        value_from_event=objective.value_from_event,
        window_days=objective.attribution_window_days,
        unsubscribe_penalty=objective.fatigue_penalties.unsubscribe,
        complaint_penalty=objective.fatigue_penalties.complaint,
        customer_codes=codes,
    )


def _without_small_outcomes(events: pd.DataFrame, objective: Objective) -> pd.DataFrame:
    """The events, less outcome events below the outcome's ``min_value`` (not conversions)."""
    least = objective.outcome.min_value
    if least is None:
        return events
    small = (events["type"] == objective.outcome.event_type.value) & ~(events["value"] >= least)
    return events[~small.to_numpy(dtype=bool)]
