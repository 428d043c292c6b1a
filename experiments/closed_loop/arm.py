"""One arm of the closed loop: a world, the service deciding for it, and what happened.

Each arm owns a copy of the simulated world and a store of its own. Time moves in ticks: at
each tick the service receives the events that happened since the previous one, decides for
the customers whose decision moment fell in the tick (``DecisionEngine.decide_many`` with
``as_of`` the tick's start), and sends the messages that are due after confirming them at
their send time (``DecisionEngine.confirm``); what goes out is applied to the world, which
draws the customers' responses, and reported to the store as contacts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisioning.actions import ActionSpace, Slot
from decisioning.channels import Channel
from decisioning.objectives import Objective
from decisioning.records import Contact
from decisioning.store import Store
from experiments.closed_loop.arms import TruthBook
from experiments.closed_loop.feed import EventFeed, moment
from experiments.closed_loop.ledger import Ledger
from experiments.simulator import SimObjective, Simulator
from serving.engine import DecisionEngine


@dataclass(order=True)
class _Due:
    """A scheduled contact waiting for its send time.

    Contacts go out by send time, then customer: an order that does not depend on the random
    decision ids, so the world draws the same responses for the same sends in every run.
    """

    send_at: float
    customer: int
    decision_id: str
    channel: str = field(default="", compare=False)
    slot: str = field(default="", compare=False)
    decided_at: float = field(default=0.0, compare=False)
    propensity: float = field(default=1.0, compare=False)


@dataclass
class ArmCounts:
    """What went through the arm's service."""

    decisions: int = 0
    outside_objective: int = 0
    events: int = 0
    sent: int = 0
    cancelled: int = 0
    cancel_reasons: dict[str, int] = field(default_factory=dict)


class ArmRun:
    """The service (engine and store) deciding for one copy of the world.

    Parameters
    ----------
    name : str
        The arm's name.
    sim : Simulator
        The arm's own world, at the first day of the loop.
    store : Store
        The arm's store, holding the history and the active objective.
    engine : DecisionEngine
        The engine over ``store`` with the arm's policy source.
    objective : Objective
        The objective decided for.
    truth : TruthBook, optional
        Filled with the ground truth before every decision (the oracle reads it).
    """

    def __init__(
        self,
        name: str,
        *,
        sim: Simulator,
        store: Store,
        engine: DecisionEngine,
        objective: Objective,
        sim_objective: SimObjective,
        truth: TruthBook | None = None,
    ) -> None:
        self.name = name
        self.sim, self.store, self.engine = sim, store, engine
        self.objective = objective
        self.sim_objective = sim_objective
        self.actions: ActionSpace = objective.action_space()
        self.truth = truth
        self.feed = EventFeed(sim)
        self.feed.offset = len(sim.event_log)  # the history is in the store already
        self.ledger = Ledger()
        self.counts = ArmCounts()
        self._queue: list[_Due] = []
        self._ids = sim.population.customer_ids

    # -- a tick -------------------------------------------------------------------------------

    def tick(self, day: int, start: float, end: float, customers: np.ndarray) -> None:
        """Feed the events before ``start``, decide for ``customers``, send what is due."""
        self.sim.release(start)
        self.ingest()
        if len(customers):
            self._decide(day, start, customers)
        self._send(day, end)

    def has_due(self, end: float) -> bool:
        """Whether a scheduled contact goes out before ``end``."""
        return bool(self._queue) and self._queue[0].send_at < end

    def end_day(self, day: int) -> None:
        """Write the rest of the day's events and feed them to the store."""
        self.sim.step(day)
        self.ingest()

    def ingest(self) -> None:
        events = self.feed.take()
        if events:
            self.store.ingest_events(events)
            self.counts.events += len(events)

    @property
    def pending(self) -> int:
        """Contacts scheduled and not sent yet."""
        return len(self._queue)

    # -- deciding -----------------------------------------------------------------------------

    def _decide(self, day: int, at: float, customers: np.ndarray) -> None:
        idx = np.asarray(customers, dtype=np.int64)
        when = np.full(len(idx), at)
        values = self.sim.ground_truth(idx, when, self.actions, self.sim_objective)
        ids = self._ids[idx]
        if self.truth is not None:
            self.truth.fill(ids, when, values)
        decisions = self.engine.decide_many(list(ids), as_of=moment(at))
        index = {key: i for i, key in enumerate(self.actions.keys)}
        for i, decision in enumerate(decisions):
            self.counts.decisions += 1
            if decision.objective_id != self.objective.id:
                self.counts.outside_objective += 1
                continue
            key = decision.action.key
            channel = decision.action.channel.value
            self.ledger.add(
                decision_id=decision.decision_id,
                customer=int(idx[i]),
                day=day,
                decided_at=at,
                action=key,
                channel=channel,
                holdout=decision.holdout,
                propensity=decision.propensity,
                model_version=decision.model_version,
                cost=self.objective.cost_of(channel),
                truth=values[i],
                chosen=index[key],
                eligible=np.asarray(decision.eligible, dtype=bool),
            )
            if not decision.action.is_nothing:
                send = decision.send_at.timestamp() if decision.send_at else at
                heapq.heappush(
                    self._queue,
                    _Due(
                        send, int(idx[i]), decision.decision_id, channel,
                        decision.action.slot.value, at, decision.propensity,
                    ),
                )  # fmt: skip

    # -- sending ------------------------------------------------------------------------------

    def _send(self, day: int, end: float) -> None:
        due: list[_Due] = []
        while self._queue and self._queue[0].send_at < end:
            due.append(heapq.heappop(self._queue))
        if not due:
            return
        going: list[_Due] = []
        for item in due:
            reason = self._check(item)
            if reason is None:
                going.append(item)
                continue
            self.ledger.cancelled(item.decision_id)
            self.counts.cancelled += 1
            reasons = self.counts.cancel_reasons
            reasons[reason] = reasons.get(reason, 0) + 1
        if not going:
            return
        contact_ids = self.sim.apply_decisions(
            day,
            np.array([g.customer for g in going], dtype=np.int64),
            np.array([g.send_at for g in going]),
            [f"{g.channel}@now" for g in going],
            [g.decision_id for g in going],
            objective=self.sim_objective,
            propensities=np.array([g.propensity for g in going]),
        )
        records = []
        for item, contact_id in zip(going, contact_ids, strict=True):
            self.store.update_decision_status(item.decision_id, "sent", at=moment(item.send_at))
            self.ledger.sent(item.decision_id, item.send_at)
            records.append(self._contact(item, str(contact_id)))
        self.store.ingest_contacts(records)
        self.counts.sent += len(going)

    def _check(self, item: _Due) -> str | None:
        """Why the scheduled contact must not go out, or None: the send-time confirmation."""
        if np.isfinite(self.sim.state.cancel_at[item.customer]):
            self.store.update_decision_status(
                item.decision_id, "cancelled", at=moment(item.send_at)
            )
            return "the customer cancelled"
        verdict = self.engine.confirm(item.decision_id, at=moment(item.send_at))
        return None if verdict.go else _short(verdict.reason)

    def _contact(self, item: _Due, contact_id: str) -> Contact:
        objective = self.objective
        return Contact(
            contact_id=contact_id,
            customer_id=str(self._ids[item.customer]),
            ts=moment(item.decided_at),
            channel=Channel(item.channel),
            slot=Slot(item.slot),
            send_at=moment(item.send_at),
            objective=objective.id,
            cost=objective.cost_of(item.channel),
            propensity=item.propensity,
            decision_id=item.decision_id,
            category=objective.outcome.category if objective.kind == "increase" else None,
        )

    def describe(self) -> dict[str, Any]:
        """What went through the arm's service, for the report."""
        c = self.counts
        return {
            "decisions": c.decisions,
            "outside_objective": c.outside_objective,
            "events_ingested": c.events,
            "sent": c.sent,
            "cancelled_at_send_time": c.cancelled,
            "cancel_reasons": dict(c.cancel_reasons),
        }


def _short(reason: str | None) -> str:
    """The kind of a cancellation reason: without its channel prefix and its details."""
    text = reason or "cancelled"
    channel, sep, rest = text.partition(": ")
    if sep and channel in {c.value for c in Channel}:
        text = rest
    return text.split("(")[0].strip()
