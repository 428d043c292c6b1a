"""Online learning: rewards flowing back teach the served VW bandit in the background."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from decisioning.channels import Channel
from decisioning.context import build_context
from decisioning.decision import Decision
from decisioning.guardrails import ContactPolicy
from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy
from decisioning.records import Customer, Event, EventType
from decisioning.store import Store, open_store
from models.encoding import BanditBatch
from models.vw_bandit import VWBandit
from serving.engine import DecisionEngine
from training.attribution import attribute
from training.online import FEATURES_KEY, OnlineUpdater, logged_context

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
OBJECTIVE = Objective.model_validate(
    {
        "id": "upsell",
        "name": "Upsell",
        "status": "active",
        "outcome": {"event_type": "purchase"},
        "value_per_conversion": 10.0,
        "holdout_fraction": 0.0,
        "channels": ["email", "push"],
        "slots": ["now"],
    }
)


class Served:
    """A policy source serving one bandit under a version the test can change."""

    def __init__(self, bandit: VWBandit, version: str = "upsell/1") -> None:
        self.bandit, self.version = bandit, version

    def policy_for(self, objective: Objective) -> ServedPolicy:
        return ServedPolicy(self.bandit, self.version)


@dataclass
class World:
    store: Store
    served: Served
    ids: list[str]


def _customers(n: int) -> list[Customer]:
    return [
        Customer(
            f"c{i:03d}",
            signup_at=NOW - timedelta(days=20 + i),
            consents={Channel.EMAIL: True, Channel.PUSH: True},
            attributes={"plan": "basic" if i % 2 else "premium"},
        )
        for i in range(n)
    ]


def _bandit(store: Store, ids: list[str]) -> VWBandit:
    """A bandit fitted on neutral feedback (every action worth nothing) for these customers."""
    actions = OBJECTIVE.action_space()
    states = store.get_states(ids)
    contexts = [
        build_context(
            states[cid], actions=actions, now=NOW.timestamp() - 3600, policy=ContactPolicy(),
            costs=OBJECTIVE.costs(actions),
        )[0]
        for cid in ids
    ]  # fmt: skip
    n = len(contexts)
    batch = BanditBatch.from_contexts(
        contexts, action=[i % len(actions) for i in range(n)], reward=[0.0] * n, pscore=[1 / 3] * n
    )
    return VWBandit(exploration="epsilon", epsilon=0.6, seed=0).fit(batch)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_store(f"sqlite:///{tmp_path / 'online.db'}", create=True) as store:
        customers = _customers(40)
        store.upsert_customers(customers)
        store.save_objective(OBJECTIVE.model_dump(mode="json"))
        ids = [c.customer_id for c in customers]
        yield World(store, Served(_bandit(store, ids)), ids)


def _decide(world: World, *, log_features: bool = True, hours: float = 0.0) -> list[Decision]:
    engine = DecisionEngine(
        store=world.store, policies=world.served, seed=1, log_features=log_features
    )
    moment = NOW + timedelta(hours=hours)
    return list(engine.decide_many(world.ids, objective_id="upsell", as_of=moment))


def _rewards(decisions: list[Decision]) -> dict[str, float]:
    """Email pays, push harms, doing nothing is neutral."""
    worth = {"email": 10.0, "push": -10.0, "none": 0.0}
    return {d.decision_id: worth[d.action.channel.value] for d in decisions}


def test_logged_features_rebuild_the_decision_context(world: World) -> None:
    decision = _decide(world)[0]
    logged = world.store.get_decision(decision.decision_id).decision
    assert FEATURES_KEY in logged.context
    rebuilt = logged_context(logged, OBJECTIVE)
    assert rebuilt is not None
    state = world.store.get_state(decision.customer_id)
    actions = OBJECTIVE.action_space()
    original, _ = build_context(
        state, actions=actions, now=NOW.timestamp(), policy=ContactPolicy(),
        costs=OBJECTIVE.costs(actions),
    )  # fmt: skip
    assert rebuilt.customer == pytest.approx(original.customer, abs=1e-6)
    np.testing.assert_allclose(rebuilt.action_features, original.action_features, atol=1e-6)
    np.testing.assert_array_equal(rebuilt.eligible, np.array(logged.eligible))
    assert rebuilt.attributes == original.attributes and rebuilt.now == NOW.timestamp()
    np.testing.assert_allclose(rebuilt.costs, OBJECTIVE.costs(actions))
    # the bandit scores the rebuilt context exactly as the original one
    bandit = world.served.bandit
    np.testing.assert_allclose(
        bandit.expected_values(rebuilt), bandit.expected_values(original), atol=1e-4
    )


def test_rewards_move_the_bandit_in_their_direction(world: World) -> None:
    bandit = world.served.bandit
    decisions = _decide(world)
    chosen = {d.action.channel.value for d in decisions}
    assert {"email", "push"} <= chosen  # epsilon exploration tried both
    probe = logged_context(world.store.get_decision(decisions[0].decision_id).decision, OBJECTIVE)
    assert probe is not None
    email, push = (OBJECTIVE.action_space().index(k) for k in ("email@now", "push@now"))
    before = bandit.expected_values(probe)
    updates = bandit.n_updates_
    with OnlineUpdater(world.served, world.store) as updater:
        for _ in range(4):  # the same rewards, seen a few times, as a longer stream would
            assert updater.submit(_rewards(decisions)) == len(decisions)
        assert updater.wait(timeout=60)
        stats = updater.stats
    after = bandit.expected_values(probe)
    assert stats.learned == 4 * len(decisions) and not stats.skipped and stats.failed == 0
    assert bandit.n_updates_ == updates + 4 * len(decisions)
    assert after[email] > before[email] + 1.0
    assert after[push] < before[push] - 1.0


def test_attributed_rewards_flow_into_the_bandit(world: World) -> None:
    """Decide, send, observe, attribute, learn: the whole loop through the store."""
    bandit = world.served.bandit
    decisions = _decide(world)
    events = []
    for d in decisions:
        if d.is_contact:
            world.store.update_decision_status(d.decision_id, "sent", at=d.decided_at)
        later = d.decided_at + timedelta(days=1)
        if d.action.channel is Channel.EMAIL:  # email customers buy, push customers leave
            events.append(Event(f"p-{d.decision_id}", d.customer_id, later, EventType.PURCHASE))
        elif d.action.channel is Channel.PUSH:
            events.append(Event(f"u-{d.decision_id}", d.customer_id, later, EventType.UNSUBSCRIBE))
    world.store.ingest_events(events)
    result = attribute(world.store, now=NOW + timedelta(days=8))
    assert result.attributed == len(decisions)
    probe = logged_context(world.store.get_decision(decisions[0].decision_id).decision, OBJECTIVE)
    assert probe is not None
    email, push = (OBJECTIVE.action_space().index(k) for k in ("email@now", "push@now"))
    before = bandit.expected_values(probe)
    with OnlineUpdater(world.served, world.store) as updater:
        for _ in range(4):
            updater.submit(result.rewards)
        assert updater.wait(timeout=60)
    after = bandit.expected_values(probe)
    assert updater.stats.learned == 4 * len(decisions)
    assert after[email] > before[email] + 1.0
    assert after[push] < before[push] - 1.0


def test_only_the_champions_own_decisions_teach_it(world: World) -> None:
    bandit = world.served.bandit
    decisions = _decide(world)
    world.served.version = "upsell/2"  # a new champion: the old decisions are another model's
    updates = bandit.n_updates_
    updater = OnlineUpdater(world.served, world.store)
    assert updater.learn(_rewards(decisions).items()) == 0
    assert updater.stats.skipped == {"decided by another model than the champion": len(decisions)}
    assert bandit.n_updates_ == updates


def test_decisions_logged_without_features_are_skipped(world: World) -> None:
    decisions = _decide(world, log_features=False)
    updater = OnlineUpdater(world.served, world.store)
    assert updater.learn([*_rewards(decisions).items(), ("missing", 1.0)]) == 0
    assert updater.stats.skipped == {
        "features not logged with the decision": len(decisions),
        "decision not logged": 1,
    }


def test_a_full_queue_drops_rewards_and_stop_reports_the_rest(world: World) -> None:
    updater = OnlineUpdater(world.served, world.store, max_queue=2)
    assert updater.submit([("a", 1.0), ("b", 1.0), ("c", 1.0)]) == 2
    assert updater.stats.dropped == 1
    updater.stop(drain=False, timeout=1)  # never started: the two queued are dropped too
    assert updater.stats.dropped == 3 and updater.stats.learned == 0
    assert updater.wait(timeout=1)
