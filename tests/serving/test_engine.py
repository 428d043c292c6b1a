"""The decision engine: one code path for single, batch and backtest decisions."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.policy import ServedPolicy, validate_distribution
from decisioning.records import Customer, Event, EventType
from decisioning.store import open_store
from experiments.quality import example_objective
from models.baselines import RandomPolicy
from serving.engine import DecisionEngine
from serving.engine_parts import best_alternatives

NOW = datetime(2026, 3, 3, 10, 30, tzinfo=UTC)  # a Tuesday, 11:30 in Paris


class Fixed:
    """A policy source serving one policy for every objective."""

    def __init__(self, policy) -> None:
        self.served = ServedPolicy(policy, "test/1")

    def policy_for(self, objective):
        return self.served


@pytest.fixture
def engine(tmp_path):
    return _engine(tmp_path / "engine.db")


def _engine(path):
    store = open_store(f"sqlite:///{path}", create=True)
    store.upsert_customers(
        Customer(
            f"c{i}",
            signup_at=NOW - timedelta(days=400),
            timezone="Europe/Paris",
            consents={"email": True, "sms": True, "push": True, "whatsapp": False},
            attributes={"plan": "basic" if i % 2 else "premium", "segment": "family"},
        )
        for i in range(40)
    )
    for name in ("premium_upsell", "churn"):
        objective = example_objective(name).activate()
        store.save_objective(objective.model_dump(mode="json"))
    return DecisionEngine(store=store, policies=Fixed(RandomPolicy(seed=1)), seed=3)


def test_a_decision_carries_what_learning_needs(engine):
    d = engine.decide("c1", objective_id="premium_upsell", as_of=NOW)
    dist = np.array(d.distribution)
    validate_distribution(dist, np.array(d.eligible))
    assert d.propensity == pytest.approx(dist[d.actions.index(d.action.key)])
    assert d.model_version == "test/1" and d.objective_version == 1
    assert not d.eligible[d.actions.index("whatsapp@now")]  # no consent
    assert any(b.rule == "consent" for b in d.blocked)
    logged = engine.store.get_decision(d.decision_id)
    assert logged.decision.distribution == d.distribution


def test_same_moment_same_choice(engine):
    a = engine.decide("c3", objective_id="premium_upsell", as_of=NOW, log=False)
    b = engine.decide("c3", objective_id="premium_upsell", as_of=NOW, log=False)
    assert a.action == b.action and a.propensity == b.propensity


def test_fresh_ticket_silences_at_once(engine):
    engine.store.ingest_events(
        [Event("t1", "c5", NOW - timedelta(minutes=1), EventType.SUPPORT_TICKET_OPENED)]
    )
    d = engine.decide("c5", objective_id="premium_upsell", as_of=NOW)
    assert d.action.is_nothing
    assert sum(d.eligible) == 1
    assert all(b.rule == "support_ticket" for b in d.blocked)
    assert d.propensity == 1.0 and d.alternatives == ()


def test_alternatives_are_the_best_other_eligible_actions():
    keys = ("none", "a", "b", "c", "d")
    values = np.array([0.1, 0.5, np.nan, 0.9, 0.7])
    eligible = np.array([True, True, True, True, False])
    best = best_alternatives(keys, values, eligible, chosen=3)
    assert [(a.action, a.expected_value) for a in best[:2]] == [("a", 0.5), ("none", 0.1)]
    assert best[2].action == "b"  # a value that is not a number comes last
    only = np.array([True, False, False, False, False])
    assert best_alternatives(keys, values, only, chosen=0) == ()
    assert best_alternatives(keys, None, eligible, chosen=0) == ()


def test_holdout_customers_get_nothing_with_the_flag(engine):
    objective = engine.objective("premium_upsell")
    from decisioning.holdout import in_holdout

    held = [f"c{i}" for i in range(40) if in_holdout(f"c{i}", objective.id, 0.1)]
    assert held, "with 40 customers and a 10% holdout some are held out"
    d = engine.decide(held[0], objective_id="premium_upsell", as_of=NOW)
    assert d.holdout and d.action.is_nothing and d.propensity == 1.0


def test_unknown_customer_gets_a_cold_start_decision(engine):
    d = engine.decide("never-seen", objective_id="premium_upsell", as_of=NOW)
    assert d.context["known_customer"] is False
    # nothing known: no consent, and paid media waits for an owned channel to be tried
    assert d.action.is_nothing and sum(d.eligible) == 1


def test_one_voice_across_objectives(engine):
    """Without an objective the engine arbitrates; after a contact, others wait the window."""
    first = engine.decide("c7", as_of=NOW)
    assert first.objective_id in {"premium_upsell", "churn"}
    if not first.action.is_nothing:
        later = engine.decide("c7", as_of=NOW + timedelta(hours=1))
        assert later.action.is_nothing
        assert any(b.rule == "one_voice" for b in later.blocked)


def test_batch_is_the_same_logic_and_logs_everything(engine):
    ids = [f"c{i}" for i in range(40)]
    # one by one first (not logged): features of a chunk computed together equal one customer's
    alone = {
        i: engine.decide(ids[i], objective_id="premium_upsell", as_of=NOW, log=False)
        for i in (0, 9, 17, 33)
    }
    batch = list(engine.decide_many(ids, objective_id="premium_upsell", as_of=NOW))
    assert [d.customer_id for d in batch] == ids
    for i, single in alone.items():
        assert single.action == batch[i].action and single.propensity == batch[i].propensity
        assert single.distribution == batch[i].distribution
        assert single.eligible == batch[i].eligible and single.blocked == batch[i].blocked
    logged = list(engine.store.iter_decisions("premium_upsell"))
    assert len(logged) == 40
    ids_given = {d.decision_id for d in batch} | {d.decision_id for d in alone.values()}
    assert len(ids_given) == 44 and all(re.fullmatch("[0-9a-f]{32}", i) for i in ids_given)


def test_decide_chunks_gives_each_chunk_logged_in_the_order_of_the_list(engine):
    ids = [f"c{i}" for i in range(11)]
    seen, logged_before = [], []
    for part in engine.decide_chunks(ids, objective_id="premium_upsell", as_of=NOW, chunk=4):
        logged_before.append(len(list(engine.store.iter_decisions("premium_upsell"))))
        seen.append([d.customer_id for d in part])
    assert seen == [ids[0:4], ids[4:8], ids[8:11]]
    assert logged_before == [4, 8, 11]  # a chunk comes once its decisions are logged


def test_a_customer_listed_again_in_a_batch_is_decided_as_a_second_call(engine, tmp_path):
    """A batch that lists a customer twice gives what two calls in a row give: the second
    decision sees the first one's contact, instead of a second contact in the same chunk."""
    ids = [f"c{i}" for i in range(1, 40, 2)]  # basic plan: in the premium upsell segment
    first = list(engine.decide_many(ids, objective_id="premium_upsell", as_of=NOW, log=False))
    contacted = [d.customer_id for d in first if not d.action.is_nothing]
    assert len(contacted) >= 2, "the random policy contacts some of 20 customers"
    a, b = contacted[:2]
    listed = [a, b, a, "c2", b, a]
    batch = list(engine.decide_many(listed, objective_id="premium_upsell", as_of=NOW, chunk=4))
    alone = _engine(tmp_path / "alone.db")
    calls = [alone.decide(c, objective_id="premium_upsell", as_of=NOW) for c in listed]
    assert [d.customer_id for d in batch] == listed
    for together, single in zip(batch, calls, strict=True):
        assert (together.action, together.propensity) == (single.action, single.propensity)
        assert together.blocked == single.blocked
    assert not batch[0].action.is_nothing and not batch[1].action.is_nothing
    for again in (batch[2], batch[4], batch[5]):
        assert again.action.is_nothing
        assert any(blocked.rule == "one_voice" for blocked in again.blocked)
    engine.store.flush_decisions()
    sends = [d.decision.customer_id for d in engine.store.iter_decisions("premium_upsell")
             if d.status == "scheduled"]  # fmt: skip
    assert sends.count(a) == sends.count(b) == 1


class _Slow(RandomPolicy):
    """Scores a chunk slowly, saying when it started: a batch caught in the middle."""

    def __init__(self) -> None:
        super().__init__(seed=1)
        self.scoring = threading.Event()

    def action_distributions(self, batch):
        self.scoring.set()
        time.sleep(0.3)
        return super().action_distributions(batch)


def test_a_call_for_a_customer_a_batch_is_deciding_waits_for_its_decision(engine):
    """A batch's chunk (in a worker thread, as the API streams it) and a call for one of its
    customers never both contact: the call waits for the chunk's decision and sees it."""
    ids = [f"c{i}" for i in range(1, 40, 2)]
    first = engine.decide_many(ids, objective_id="premium_upsell", as_of=NOW, log=False)
    contacted = next(d.customer_id for d in first if not d.action.is_nothing)
    slow = _Slow()
    engine.policies = Fixed(slow)
    batch: list = []
    worker = threading.Thread(
        target=lambda: batch.extend(
            engine.decide_many(ids, objective_id="premium_upsell", as_of=NOW)
        )
    )
    worker.start()
    assert slow.scoring.wait(5)
    call = engine.decide(contacted, objective_id="premium_upsell", as_of=NOW)
    worker.join()
    in_batch = next(d for d in batch if d.customer_id == contacted)
    assert not in_batch.action.is_nothing
    assert call.action.is_nothing and any(b.rule == "one_voice" for b in call.blocked)
    assert len(engine._in_flight) == 0


def test_decide_many_refuses_an_empty_chunk(engine):
    with pytest.raises(InvalidInput, match="chunk"):
        list(engine.decide_many(["c1"], chunk=0))


def test_decide_each_gives_each_call_its_own_decision_in_one_chunk(engine):
    ids = [f"c{i}" for i in range(12)]
    contexts = [{"device": "ios"} if i % 3 else None for i in range(12)]
    alone = [
        engine.decide(c, request=r, as_of=NOW, log=False)
        for c, r in zip(ids, contexts, strict=True)
    ]
    together = engine.decide_each(list(zip(ids, contexts, strict=True)), as_of=NOW)
    assert [d.customer_id for d in together] == ids
    for single, d in zip(alone, together, strict=True):
        assert (d.objective_id, d.action, d.propensity) == (
            single.objective_id, single.action, single.propensity
        )  # fmt: skip
        assert d.distribution == single.distribution and d.blocked == single.blocked
        assert d.explanation == single.explanation
        assert d.context == single.context
    # each decided customer keeps the request context of its own call
    decided = [i for i, d in enumerate(together) if d.objective_id is not None]
    assert {bool(contexts[i]) for i in decided} == {True, False}
    for i in decided:
        assert together[i].context["request"] == (contexts[i] or {})
    engine.store.flush_decisions()
    assert {d.decision.decision_id for d in engine.store.iter_decisions()} == {
        d.decision_id for d in together
    }


def test_decide_each_asks_for_a_customer_once(engine):
    with pytest.raises(InvalidInput, match="once per call"):
        engine.decide_each([("c1", None), ("c2", None), ("c1", None)], as_of=NOW)


def test_unknown_and_paused_objectives(engine):
    with pytest.raises(NotFound, match="nope"):
        engine.decide("c1", objective_id="nope", as_of=NOW)
    engine.store.set_objective_status("churn", "paused")
    engine.refresh()
    with pytest.raises(Conflict, match="paused"):
        engine.decide("c1", objective_id="churn", as_of=NOW)


def test_confirm_cancels_after_a_purchase(engine):
    for i in range(40):
        d = engine.decide(f"c{i}", objective_id="premium_upsell", as_of=NOW)
        if not d.action.is_nothing:
            break
    else:
        pytest.fail("a random policy contacts someone among 40 customers")
    engine.store.ingest_events(
        [Event("p1", d.customer_id, NOW + timedelta(minutes=5), EventType.PURCHASE, value=20.0)]
    )
    verdict = engine.confirm(d.decision_id, at=NOW + timedelta(minutes=10))
    assert not verdict.go and "purchase" in (verdict.reason or "")
    assert engine.store.get_decision(d.decision_id).status == "cancelled"


def test_a_scheduled_send_whose_time_passed_still_holds_the_customer():
    """An unreported send counts as a contact at its send time for the arbitration window."""
    from decisioning.customer_view import CustomerState
    from serving.engine_parts import last_contact

    now = NOW.timestamp()
    state = CustomerState("c1")
    assert last_contact(state, [], now) is None
    assert last_contact(state, [now - 1800.0], now) == now - 1800.0  # sent 30 min ago
    assert last_contact(state, [now + 7200.0], now) == pytest.approx(now)  # held from now
    assert last_contact(state, [now - 7200.0, now + 60.0], now) == pytest.approx(now)


def test_budget_periods_are_named_by_day_iso_week_and_month():
    from experiments.quality import example_objective
    from serving.engine_parts import period_key

    objective = example_objective("premium_upsell")
    moment = datetime(2027, 1, 2, 23, 30, tzinfo=UTC)  # a Saturday in ISO week 2026-W53
    keys = {
        period: period_key(objective.model_copy(update={"budget_period": period}), moment)
        for period in ("day", "week", "month")
    }
    assert keys == {"day": "2027-01-02", "week": "2026-W53", "month": "2027-01"}


def test_decision_ids_are_unique_and_a_forked_child_draws_its_own():
    import os

    from serving.engine_parts import new_decision_ids

    ids = [i for n in (1, 3, 200, 1, 500) for i in new_decision_ids(n)]
    assert len(set(ids)) == len(ids) == 705
    assert all(re.fullmatch("[0-9a-f]{32}", i) for i in ids)
    new_decision_ids(1)  # the parent holds unused randomness when it forks
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, "".join(new_decision_ids(4)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    mine = "".join(new_decision_ids(4))
    assert len(child) == 128 and child != mine


def test_decision_ids_are_uuid7_and_sort_by_the_time_they_were_made() -> None:
    import uuid

    from serving.engine_parts import _RandomIds

    now = [1_764_000_000_000_000_000]  # ns
    ids = _RandomIds(clock=lambda: now[0])
    first = ids.take(300)
    now[0] += 1_000_000  # a millisecond later
    later = ids.take(2)
    for i in first + later:
        parsed = uuid.UUID(hex=i)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert int(i[:12], 16) in (1_764_000_000_000, 1_764_000_000_001)
    assert len(set(first + later)) == 302
    assert max(first) < min(later)
    # the 74 bits after the time are random: each of their hex digits takes every value
    assert all(len({i[k] for i in first}) == 16 for k in (13, 14, 15, *range(17, 32)))
    assert {i[16] for i in first} == set("89ab")


class Seen:
    """A uniform policy that keeps the action features of every context it is shown."""

    name, seed = "seen", 0

    def __init__(self) -> None:
        self.features: dict[str, list[np.ndarray]] = {}
        self.eligible: dict[str, np.ndarray] = {}

    def action_distribution(self, context):
        self.features.setdefault(context.customer_id, []).append(context.action_features.copy())
        self.eligible[context.customer_id] = context.eligible.copy()
        return context.eligible / context.eligible.sum()

    def expected_values(self, context):
        return None


def test_a_chunk_shows_the_policy_the_features_one_decision_would(engine):
    seen = Seen()
    engine.policies = Fixed(seen)
    ids = [f"c{i}" for i in range(40)]
    for cid in ids:
        engine.decide(cid, objective_id="premium_upsell", as_of=NOW, log=False)
    list(engine.decide_many(ids, objective_id="premium_upsell", as_of=NOW, log=False))
    allowed = 0
    for cid in ids:
        one, chunk = seen.features[cid]
        eligible = seen.eligible[cid]
        assert np.array_equal(one, chunk)
        assert one[1:][eligible[1:], 0].all()  # the allowed contacts' features are there
        assert not one[~eligible].any()  # the blocked ones are not worked out
        allowed += int(eligible[1:].sum())
    assert allowed > 0
