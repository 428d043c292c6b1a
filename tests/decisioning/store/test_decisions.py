"""The decision log: round trip, status transitions, rewards, queries and counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from decisioning.actions import DO_NOTHING, Action, Slot
from decisioning.channels import Channel
from decisioning.decision import ActionValue, BlockedAction, Decision
from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.store import Store
from tests.decisioning.store.support import at

ACTIONS = ("none", "email@now", "sms@today_evening")


def decision(
    decision_id: str,
    *,
    customer: str = "c0",
    action: Action = Action(Channel.EMAIL),
    hours: float = 0.0,
    send_hours: float | None = None,
    holdout: bool = False,
    objective: str = "o1",
) -> Decision:
    return Decision(
        decision_id=decision_id,
        customer_id=customer,
        decided_at=at(hours),
        objective_id=objective,
        objective_version=3,
        action=action,
        send_at=None if action.is_nothing else at(send_hours if send_hours is not None else hours),
        propensity=0.7,
        model_version="m-12",
        actions=ACTIONS,
        distribution=(0.2, 0.7, 0.1),
        eligible=(True, True, False),
        expected_value=0.42,
        alternatives=(ActionValue("email@now", 0.42), ActionValue("none", 0.0)),
        blocked=(BlockedAction("sms@today_evening", "quiet_hours", "after 21:00 locally"),),
        holdout=holdout,
        explanation="email is the best net value",
        context={"segment": "lapsed", "score": 0.5},
    )


def test_round_trip_keeps_every_field(store: Store) -> None:
    original = decision("d1", action=Action(Channel.SMS, Slot.TODAY_EVENING), send_hours=10)
    assert store.log_decision(original) is True
    logged = store.get_decision("d1")
    assert logged.decision == original
    assert logged.status == "scheduled" and logged.reward is None
    assert logged.decision.send_at.tzinfo is not None


def _stored_doc(store: Store, decision_id: str) -> dict:
    from decisioning.store.engine import loads
    from decisioning.store.schema import decisions

    with store.engine.connect() as conn:
        stmt = sa.select(decisions.c.doc).where(decisions.c.decision_id == decision_id)
        doc = conn.execute(stmt).scalar_one()
    return loads(doc) if isinstance(doc, str) else doc


def test_the_log_document_keeps_each_reason_once(store: Store) -> None:
    keys = [f"{ch}@{slot}" for ch in ("email", "sms") for slot in ("now", "today_noon")]
    blocked = [BlockedAction(k, "consent", f"{k[: k.index('@')]}: no consent") for k in keys] + [
        BlockedAction("paid_social@now", "waterfall", "paid_social: owned channels first")
    ]
    original = replace(
        decision("d1", action=DO_NOTHING),
        actions=("none", *keys, "paid_social@now"),
        distribution=(1.0, 0, 0, 0, 0, 0),
        eligible=(True, False, False, False, False, False),
        blocked=tuple(reversed(blocked)),  # any order: kept as it was
        alternatives=(),
    )
    store.log_decision(original)
    doc = _stored_doc(store, "d1")
    assert doc["reasons"] == [
        ["waterfall", "paid_social: owned channels first"],
        ["consent", "sms: no consent"],
        ["consent", "email: no consent"],
    ]
    assert doc["blocked"] == [[5, 0], [4, 1], [3, 1], [2, 2], [1, 2]]
    assert doc["eligible"] == "100000"
    assert store.get_decision("d1").decision == original
    # decisions sharing the blocked records, or holding others in another order, read back alike
    shared = replace(original, decision_id="d2")
    other = replace(original, decision_id="d3", blocked=tuple(blocked))
    store.log_decisions([shared, other])
    assert _stored_doc(store, "d2")["blocked"] == doc["blocked"]
    assert _stored_doc(store, "d3")["blocked"] == [[1, 0], [2, 0], [3, 1], [4, 1], [5, 2]]
    assert [store.get_decision(d).decision for d in ("d2", "d3")] == [shared, other]


def _spaces(store: Store) -> list[tuple[str, list[str]]]:
    from decisioning.store.schema import action_spaces

    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(action_spaces))]  # type: ignore[misc]


def test_the_action_space_is_kept_once_and_named_by_each_row(store_url: str) -> None:
    from decisioning.store import open_store
    from decisioning.store.log_document import space_key

    other = ("none", "push@now")
    with open_store(store_url) as first, open_store(store_url) as second:
        first.log_decisions([decision("d1"), decision("d2")])
        first.log_decisions([decision("d3"), replace(decision("d4"), actions=other,
                             distribution=(1.0, 0.0), eligible=(True, False))])  # fmt: skip
        second.log_decisions([decision("d5")], defer=True)  # kept by the first store: left
        doc = _stored_doc(first, "d1")
        assert "actions" not in doc and doc["space"] == space_key(ACTIONS)
        assert sorted(_spaces(first)) == sorted(
            [(space_key(ACTIONS), list(ACTIONS)), (space_key(other), list(other))]
        )
        # a store that never logged reads the spaces from the database
        assert second.get_decision("d4").decision.actions == other
        assert [second.get_decision(d).decision for d in ("d1", "d5")] == [
            decision("d1"),
            decision("d5"),
        ]
    assert space_key(list(ACTIONS)) == space_key(ACTIONS) != space_key(ACTIONS[::-1])


def test_a_database_made_before_action_spaces_were_kept_gets_their_table(store: Store) -> None:
    from decisioning.store.schema import action_spaces

    action_spaces.drop(store.engine)
    store.log_decisions([decision("d1")], defer=True)
    assert store.get_decision("d1").decision == decision("d1")
    assert len(_spaces(store)) == 1
    with pytest.raises(NotFound, match="action space '0123456789abcdef' not found"):
        store.action_space("0123456789abcdef")


def test_a_row_logged_in_the_earlier_document_form_reads_back(store: Store) -> None:
    from decisioning.store.decisions import _row
    from decisioning.store.log_document import finite

    original = decision("d1", action=Action(Channel.SMS, Slot.TODAY_EVENING), send_hours=10)
    row = _row(original, "scheduled", at(0))
    row["doc"] = {
        "actions": list(original.actions),
        "distribution": list(original.distribution),
        "eligible": list(original.eligible),
        "alternatives": [[a.action, finite(a.expected_value)] for a in original.alternatives],
        "blocked": [[b.action, b.rule, b.reason] for b in original.blocked],
        "explanation": original.explanation,
        "context": dict(original.context),
    }
    store._insert_rows([row])
    assert store.get_decision("d1").decision == original


def test_logging_twice_is_harmless(store: Store) -> None:
    assert store.log_decisions([decision("d1"), decision("d2")]) == 2
    assert store.log_decisions([decision("d2"), decision("d3")]) == 1
    assert store.log_decision(decision("d1")) is False


def test_default_status_follows_what_goes_out(store: Store) -> None:
    store.log_decisions(
        [decision("send"), decision("none", action=DO_NOTHING), decision("held", holdout=True)]
    )
    assert [store.get_decision(i).status for i in ("send", "none", "held")] == [
        "scheduled",
        "suppressed",
        "suppressed",
    ]


def test_status_moves_along_allowed_transitions_only(store: Store) -> None:
    store.log_decision(decision("d1"))
    assert store.update_decision_status("d1", "sent", at=at(1)).status == "sent"
    assert store.update_decision_status("d1", "sent").status == "sent"  # same status: no-op
    moved = store.update_decision_status("d1", "delivered", at=at(2))
    assert (moved.status, moved.status_at) == ("delivered", at(2))
    with pytest.raises(Conflict, match="delivered, cannot become cancelled"):
        store.update_decision_status("d1", "cancelled")
    with pytest.raises(InvalidInput, match="unknown status 'lost'"):
        store.update_decision_status("d1", "lost")
    with pytest.raises(NotFound):
        store.update_decision_status("nope", "sent")


def test_rewards_are_attached(store: Store) -> None:
    store.log_decision(decision("d1"))
    store.set_reward("d1", 12.5, "purchase")
    logged = store.get_decision("d1")
    assert (logged.reward, logged.reward_source) == (12.5, "purchase")
    assert logged.rewarded_at is not None
    with pytest.raises(NotFound):
        store.set_reward("nope", 1.0, "purchase")


def test_pending_sends_are_the_scheduled_contacts_not_yet_sent(store: Store) -> None:
    store.log_decisions(
        [
            decision("d1", hours=0, send_hours=5),
            decision("d2", hours=1, send_hours=3),
            decision("d3", hours=2, send_hours=8),
            decision("d4", hours=2, action=DO_NOTHING),
            decision("other", customer="c1", send_hours=4),
        ]
    )
    store.update_decision_status("d3", "sent")
    assert store.pending_sends("c0") == [at(3).timestamp(), at(5).timestamp()]
    assert store.pending_sends("c0", after=at(4)) == [at(5).timestamp()]
    assert store.pending_sends("nobody") == []
    assert store.pending_sends_many(["c0", "c1"])["c1"] == [at(4).timestamp()]
    assert [d.decision.decision_id for d in store.due_decisions(at(4.5))] == ["d2", "other"]


def test_iter_decisions_filters_by_objective_and_time(store: Store) -> None:
    store.log_decisions(
        [decision(f"d{i}", hours=i, objective="o1" if i % 2 else "o2") for i in range(7)]
    )
    everything = [d.decision.decision_id for d in store.iter_decisions(page=2)]
    assert everything == [f"d{i}" for i in range(7)]
    ids = [d.decision.decision_id for d in store.iter_decisions("o1", since=at(1), until=at(5))]
    assert ids == ["d1", "d3"]
    assert len(list(store.iter_decisions(since=at(6) - timedelta(seconds=1)))) == 1


def test_counts_group_by_action_holdout_and_status(store: Store) -> None:
    store.log_decisions(
        [
            decision("a"),
            decision("b"),
            decision("c", holdout=True),
            decision("d", action=DO_NOTHING),
        ]
    )
    store.set_reward("a", 2.0, "purchase")
    store.set_reward("b", 3.0, "purchase")
    counts = {(c.action, c.holdout, c.status): c for c in store.decision_counts("o1")}
    sent = counts[("email@now", False, "scheduled")]
    assert (sent.channel, sent.count, sent.rewarded, sent.reward_sum) == ("email", 2, 2, 5.0)
    assert counts[("email@now", True, "suppressed")].count == 1
    assert counts[("none", False, "suppressed")].count == 1
    assert store.decision_counts("other") == []
