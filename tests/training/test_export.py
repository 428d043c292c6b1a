"""The decision log as a training history: decisions made by the engine, learned from offline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.channels import Channel
from decisioning.decision import Decision
from decisioning.guardrails import ContactPolicy
from decisioning.history import CONTACT_COLUMNS, CUSTOMER_COLUMNS, EVENT_COLUMNS, History
from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy
from decisioning.records import Contact, Customer, Event, EventType
from decisioning.store import Store, open_store
from decisioning.store.replay import Profile
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, simulate
from models.baselines import RandomPolicy
from serving.engine import DecisionEngine
from training.dataset import build_training_set
from training.export import export_history, starting_consents


class RandomPolicies:
    """A policy source serving the uniform random policy for every objective."""

    def policy_for(self, objective: Objective) -> ServedPolicy:
        return ServedPolicy(RandomPolicy(), "random")


@dataclass
class Loop:
    """A store fed by a simulated history, decisions of the engine and the events after them."""

    store: Store
    objective: Objective
    history: History
    decisions: list[Decision]
    status: dict[str, str]
    cut: datetime


def _history_before(history: History, cut: pd.Timestamp) -> History:
    return History.from_frames(
        customers=history.customers,
        contacts=history.contacts[history.contacts["ts"] < cut],
        events=history.events[history.events["ts"] < cut],
    )


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Loop:
    sim = simulate(SimulationConfig(customers=250, days=10, seed=11))
    history = History.from_frames(customers=sim.customers, contacts=sim.contacts, events=sim.events)
    start = history.events["ts"].min().floor("D")
    cut = start + pd.Timedelta(days=6)
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('loop') / 'store.db'}", create=True)
    store.ingest_history(_history_before(history, cut))
    objective = example_objective("premium_upsell").model_copy(
        update={"segment": "", "status": "active", "budget_per_period": None}
    )
    store.save_objective(objective.model_dump(mode="json"))
    other = objective.model_copy(update={"id": "winback", "name": "Winback", "priority": 0})
    store.save_objective(other.model_dump(mode="json"))
    engine = DecisionEngine(store=store, policies=RandomPolicies(), seed=5)
    ids = history.customers["customer_id"].tolist()
    decisions: list[Decision] = []
    status: dict[str, str] = {}
    later = History.from_frames(
        customers=history.customers,
        contacts=history.contacts.iloc[:0],
        events=history.events[history.events["ts"] >= cut],
    )
    records = sorted(later.event_records(), key=lambda e: e.ts)
    arrived = 0
    for k, objective_id in enumerate(["premium_upsell", "winback", "premium_upsell"]):
        moment = (cut + pd.Timedelta(hours=10 * k + 1)).to_pydatetime()
        # the events before the moment have arrived when it decides, as in production
        due = next((i for i, e in enumerate(records) if e.ts >= moment), len(records))
        for s in range(arrived, due, 200):
            store.ingest_events(records[s : min(s + 200, due)])
        arrived = max(arrived, due)
        made = list(engine.decide_many(ids, objective_id=objective_id, as_of=moment))
        for i, d in enumerate(made):
            if not d.is_contact:
                continue
            # the orchestrator reports what became of each contact
            outcome = ("sent", "delivered", "cancelled", "failed", "sent")[i % 5]
            if outcome in ("sent", "delivered"):
                sent_at = d.send_at or d.decided_at
                store.update_decision_status(d.decision_id, "sent", at=sent_at)
                if outcome == "delivered":
                    store.update_decision_status(d.decision_id, "delivered", at=sent_at)
                store.ingest_contacts(
                    [
                        Contact(
                            d.decision_id,
                            d.customer_id,
                            d.decided_at,
                            d.action.channel,
                            slot=d.action.slot,
                            send_at=sent_at,
                            objective=d.objective_id,
                            cost=objective.cost_of(d.action.channel),
                            propensity=d.propensity,
                            decision_id=d.decision_id,
                            category="premium",
                        )  # fmt: skip
                    ]
                )
            else:
                store.update_decision_status(d.decision_id, outcome, at=d.decided_at)
            status[d.decision_id] = outcome
        decisions.extend(made)
    for s in range(arrived, len(records), 200):
        store.ingest_events(records[s : s + 200])
    store.ingest_events([Event("stray", "nobody", cut.to_pydatetime(), EventType.APP_OPEN)])
    return Loop(store, objective, history, decisions, status, cut.to_pydatetime())


def _learnable(loop: Loop, objective_id: str | None = "premium_upsell") -> set[str]:
    return {
        d.decision_id
        for d in loop.decisions
        if not d.holdout
        and (objective_id is None or d.objective_id == objective_id)
        and loop.status.get(d.decision_id, "sent") in ("sent", "delivered")
    }


def test_export_follows_the_data_contract(loop: Loop) -> None:
    frames = export_history(loop.store)
    assert list(frames["contacts"].columns) == list(CONTACT_COLUMNS)
    assert list(frames["events"].columns) == list(EVENT_COLUMNS)
    assert list(frames["customers"].columns[: len(CUSTOMER_COLUMNS)]) == list(CUSTOMER_COLUMNS)
    assert {"segment", "plan", "country"} <= set(frames["customers"].columns)
    # strict validation: every contact and event belongs to a known customer
    again = History.from_frames(**frames, strict=True)
    assert len(again.contacts) == len(frames["contacts"])
    # only known customers: the stray event's cold-start customer is not one
    assert sorted(frames["customers"]["customer_id"]) == sorted(
        loop.history.customers["customer_id"]
    )
    assert "stray" not in set(frames["events"]["event_id"])


def test_decisions_never_sent_and_holdouts_are_not_learned_from(loop: Loop) -> None:
    contacts = export_history(loop.store)["contacts"]
    logged = contacts[contacts["decision_id"].isin([d.decision_id for d in loop.decisions])]
    assert set(logged["contact_id"]) == _learnable(loop, None)
    assert any(d.holdout for d in loop.decisions)
    assert {"cancelled", "failed"} <= set(loop.status.values())
    by_id = {d.decision_id: d for d in loop.decisions}
    for row in logged.itertuples():
        d = by_id[row.contact_id]
        assert row.propensity == pytest.approx(d.propensity)
        assert row.channel == d.action.channel.value and row.objective == d.objective_id
        assert row.ts == pd.Timestamp(d.decided_at)
        assert row.cost == pytest.approx(loop.objective.cost_of(d.action.channel))
        if d.is_contact:
            assert row.slot == d.action.slot.value
            assert row.send_at == pd.Timestamp(d.send_at or d.decided_at)
    # the simulated history's own contacts come along, each once
    history = loop.history.contacts[loop.history.contacts["ts"] < pd.Timestamp(loop.cut)]
    assert set(history["contact_id"]) <= set(contacts["contact_id"])
    assert len(contacts) == len(logged) + len(history)


def test_holdout_decisions_can_be_kept_as_forced_do_nothing(loop: Loop) -> None:
    contacts = export_history(loop.store, include_holdout=True)["contacts"]
    held = {d.decision_id for d in loop.decisions if d.holdout}
    rows = contacts[contacts["contact_id"].isin(held)]
    assert len(rows) == len(held)
    assert (rows["channel"] == "none").all() and (rows["propensity"] == 1.0).all()


def test_one_objective_keeps_the_other_objectives_sends_only(loop: Loop) -> None:
    contacts = export_history(loop.store, objective_id="premium_upsell")["contacts"]
    winback = contacts[contacts["objective"] == "winback"]
    assert len(winback) > 0 and (winback["channel"] != "none").all()
    mine = contacts[contacts["objective"] == "premium_upsell"]
    logged = set(mine["contact_id"]) & {d.decision_id for d in loop.decisions}
    assert logged == _learnable(loop, "premium_upsell")


def test_a_time_window_cuts_decisions_but_keeps_the_events_of_their_rewards(loop: Loop) -> None:
    since = loop.cut
    until = loop.cut + timedelta(hours=5)
    frames = export_history(loop.store, since=since, until=until)
    assert (frames["contacts"]["ts"] >= pd.Timestamp(since)).all()
    assert (frames["contacts"]["ts"] < pd.Timestamp(until)).all()
    assert frames["events"]["ts"].max() >= pd.Timestamp(until)  # the 7-day window after `until`
    assert (frames["events"]["ts"] >= pd.Timestamp(since)).all()
    first = {d.decision_id for d in loop.decisions if d.decided_at < until}
    logged = set(frames["contacts"]["contact_id"]) & {d.decision_id for d in loop.decisions}
    assert logged == first & _learnable(loop, None)


def test_training_set_from_the_log_uses_the_logged_propensities(loop: Loop) -> None:
    frames = export_history(loop.store, objective_id="premium_upsell")
    data = build_training_set(**frames, objective=loop.objective, policy=ContactPolicy())
    by_id = {d.decision_id: d for d in loop.decisions}
    from_log = np.array([i in by_id for i in data.decision_ids])
    learnable = _learnable(loop, "premium_upsell")
    # every learnable decision is an example, but for customers the replay finds cancelled
    assert set(data.decision_ids[from_log]) <= learnable
    assert from_log.sum() >= len(learnable) - sum(data.report["skipped"].values())
    logged = np.array([by_id[i].propensity for i in data.decision_ids[from_log]])
    np.testing.assert_allclose(data.pscore[from_log], logged)
    keys = [by_id[i].action.key for i in data.decision_ids[from_log]]
    assert [data.actions[a].key for a in data.action[from_log]] == keys
    # the logged actions were eligible when decided, and the replay agrees
    assert data.eligible[from_log, data.action[from_log]].all()
    assert np.isfinite(data.reward).all()


def test_consents_are_those_before_the_exported_events() -> None:
    profile = Profile("c1", 0.0, "UTC", {"email": False, "sms": True, "push": False}, {})
    events = pd.DataFrame(
        {
            "type": ["unsubscribe", "subscribe", "subscribe", "unsubscribe"],
            "channel": ["email", "email", "sms", ""],
        }
    )
    # email: first undone by an unsubscribe (so it was given); sms: first a subscribe (so it
    # was not); push and whatsapp: withdrawn by the unsubscribe from everything, given before
    assert starting_consents(profile, events) == {
        "email": True, "sms": False, "push": True, "whatsapp": True,
    }  # fmt: skip
    assert starting_consents(profile, events.iloc[:0]) == {
        "email": False, "sms": True, "push": False, "whatsapp": False,
    }  # fmt: skip


def test_exported_consents_replay_to_the_stored_ones(tmp_path: Path) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    with open_store(f"sqlite:///{tmp_path / 's.db'}", create=True) as store:
        store.upsert_customers(
            [Customer("c1", t0 - timedelta(days=9), consents={Channel.EMAIL: True})]
        )
        store.ingest_events(
            [
                Event(
                    "u1",
                    "c1",
                    t0 + timedelta(hours=1),
                    EventType.UNSUBSCRIBE,
                    channel=Channel.EMAIL,
                )
            ]
        )
        assert store.get_state("c1").consents["email"] is False
        customers = export_history(store)["customers"]
    assert customers.loc[0, "consent_email"]  # given before the unsubscribe the events replay
