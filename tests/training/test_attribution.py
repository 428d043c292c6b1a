"""Attribution of logged decisions' rewards from the stored events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from decisioning.actions import DO_NOTHING, Action
from decisioning.channels import Channel
from decisioning.decision import Decision
from decisioning.errors import InvalidInput
from decisioning.objectives import Objective
from decisioning.records import Event, EventType
from decisioning.store import Store, open_store
from training.attribution import attribute

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
EMAIL = Action(Channel.EMAIL)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def _objective(objective_id: str = "upsell", **changes: object) -> Objective:
    data: dict[str, object] = {
        "id": objective_id,
        "name": objective_id,
        "status": "active",
        "outcome": {"event_type": "purchase", "category": "premium", "min_value": 10},
        "value_per_conversion": 40.0,
        "attribution_window_days": 7,
        "holdout_fraction": 0.0,
        "channel_costs": {"email": 0.5, "sms": 2.0},
        "fatigue_penalties": {"unsubscribe": 5.0, "complaint": 10.0},
    }
    data.update(changes)
    return Objective.model_validate(data)


def _decision(
    decision_id: str,
    customer: str,
    *,
    action: Action = EMAIL,
    days: float = 0.0,
    objective: str = "upsell",
    version: int = 1,
    holdout: bool = False,
) -> Decision:
    return Decision(
        decision_id=decision_id,
        customer_id=customer,
        decided_at=at(days),
        objective_id=objective,
        objective_version=version,
        action=action,
        send_at=None if action.is_nothing else at(days),
        propensity=1.0 if holdout else 0.5,
        model_version="upsell/1",
        actions=("none", "email@now"),
        distribution=(1.0, 0.0) if holdout else (0.5, 0.5),
        eligible=(True, True),
        holdout=holdout,
    )


def _sent(store: Store, *ids: str) -> None:
    for decision_id in ids:
        store.update_decision_status(
            decision_id, "sent", at=store.get_decision(decision_id).decision.decided_at
        )


def _purchase(
    event_id: str, customer: str, days: float, *, value: float = 50.0, category: str = "premium"
) -> Event:
    return Event(event_id, customer, at(days), EventType.PURCHASE, value=value, category=category)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'attr.db'}", create=True) as opened:
        opened.save_objective(_objective().model_dump(mode="json"))
        yield opened


def test_rewards_follow_the_objective(store: Store) -> None:
    store.log_decisions(
        [
            _decision("won", "c1"),
            _decision("idle", "c2", action=DO_NOTHING),
            _decision("harm", "c3"),
            _decision("small", "c4"),
            _decision("early", "c5"),
            _decision("held", "c6", action=DO_NOTHING, holdout=True),
        ]
    )
    _sent(store, "won", "harm", "small", "early")
    store.ingest_events(
        [
            _purchase("p1", "c1", 2.0),  # a premium purchase in the window: converted
            _purchase("p3", "c3", 1.0, category="basic"),  # not the outcome
            Event("u3", "c3", at(1.5), EventType.UNSUBSCRIBE, channel=Channel.EMAIL),
            Event("x3", "c3", at(1.6), EventType.COMPLAINT, channel=Channel.EMAIL),
            _purchase("p4", "c4", 1.0, value=5.0),  # below the outcome's min_value
            _purchase("p5a", "c5", -0.1),  # before the decision
            _purchase("p5b", "c5", 7.01),  # after the window
            _purchase("p6", "c6", 3.0),  # the holdout customer converts on their own
        ]
    )
    result = attribute(store, now=at(8))
    assert result.rewards == pytest.approx(
        {
            "won": 40 - 0.5,
            "idle": 0.0,
            "harm": -0.5 - 5 - 10,
            "small": -0.5,
            "early": -0.5,
            "held": 40.0,
        }  # fmt: skip
    )
    assert result.considered == result.attributed == 6 and result.conversions == 2
    assert result.by_objective == {"upsell": 6}
    logged = store.get_decision("won")
    assert (logged.reward, logged.reward_source, logged.rewarded_at) == (39.5, "attributed", at(8))
    assert attribute(store, now=at(9)).attributed == 0  # nothing left to do


def test_only_decisions_that_can_be_judged_are_rewarded(store: Store) -> None:
    store.log_decisions(
        [
            _decision("sent", "c1"),
            _decision("scheduled", "c2"),
            _decision("cancelled", "c3"),
            _decision("failed", "c4"),
            _decision("recent", "c5", action=DO_NOTHING, days=3.0),
            _decision("explicit", "c6", action=DO_NOTHING),
        ]
    )
    _sent(store, "sent", "failed")
    store.update_decision_status("cancelled", "cancelled", at=at(0))
    store.update_decision_status("failed", "failed", at=at(0.1))
    store.set_reward("explicit", 12.0, "explicit")
    store.ingest_events([_purchase("p6", "c6", 1.0)])
    result = attribute(store, now=at(8))
    assert set(result.rewards) == {"sent"}
    # the recent decision's window ends after `now`; later it is its turn
    assert set(attribute(store, now=at(10.5)).rewards) == {"recent"}
    explicit = store.get_decision("explicit")
    assert (explicit.reward, explicit.reward_source) == (12.0, "explicit")
    for never in ("scheduled", "cancelled", "failed"):
        assert store.get_decision(never).reward is None


def test_each_decision_uses_its_objective_version(store: Store) -> None:
    store.save_objective(
        _objective(value_per_conversion=100.0, attribution_window_days=2).model_dump(mode="json")
    )
    store.log_decisions([_decision("v1", "c1", version=1), _decision("v2", "c2", version=2)])
    _sent(store, "v1", "v2")
    store.ingest_events([_purchase("p1", "c1", 1.5), _purchase("p2", "c2", 1.5)])
    assert set(attribute(store, now=at(3)).rewards) == {"v2"}  # version 2's window is 2 days
    assert store.get_decision("v2").reward == pytest.approx(100 - 0.5)
    assert attribute(store, now=at(8)).rewards == pytest.approx({"v1": 40 - 0.5})


def test_reduce_objective_rewards_the_outcome_not_happening(store: Store) -> None:
    churn = _objective(
        "churn", kind="reduce", outcome={"event_type": "cancel"}, value_per_conversion=30.0,
        target_lift=0.2,
    )  # fmt: skip
    store.save_objective(churn.model_dump(mode="json"))
    store.log_decisions(
        [
            _decision("kept", "c1", objective="churn", action=Action(Channel.SMS)),
            _decision("lost", "c2", objective="churn", action=DO_NOTHING),
        ]
    )
    _sent(store, "kept")
    store.ingest_events([Event("x2", "c2", at(2), EventType.CANCEL)])
    result = attribute(store, now=at(8), objectives=["churn"])
    assert result.rewards == pytest.approx({"kept": 30 - 2.0, "lost": 0.0})


def test_a_stored_reduction_without_a_value_waits_with_its_reason(store: Store) -> None:
    # registering one is refused now; a version stored before that check still loads
    churn = _objective(
        "churn", kind="reduce", outcome={"event_type": "cancel"}, value_per_conversion=30.0,
        target_lift=0.2,
    ).model_copy(update={"value_per_conversion": None, "value_from_event": True})  # fmt: skip
    store.save_objective(churn.model_dump(mode="json"))
    store.log_decisions(
        [
            _decision("kept", "c1", objective="churn", action=Action(Channel.SMS)),
            _decision("d1", "c2"),
        ]
    )
    _sent(store, "kept", "d1")
    result = attribute(store, now=at(8))
    assert set(result.rewards) == {"d1"}  # the other objective is rewarded as usual
    assert result.skipped == {"reduce objective version without value_per_conversion": 1}
    assert store.get_decision("kept").reward is None  # not valued at 0: left for a valued run


def test_a_visitor_purchase_counts_once_the_visitor_is_identified(store: Store) -> None:
    store.log_decisions([_decision("d1", "c1")])
    _sent(store, "d1")
    anonymous = Event(
        "p1", "", at(1.0), EventType.PURCHASE, value=60.0, category="premium", anonymous_id="v1"
    )
    store.ingest_events([anonymous])
    store.ingest_events([Event("i1", "c1", at(2.0), EventType.IDENTIFY, anonymous_id="v1")])
    assert attribute(store, now=at(8)).rewards == pytest.approx({"d1": 39.5})


def test_pages_and_one_events_query_per_page(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.log_decisions(
        [_decision(f"d{i}", f"c{i}", action=DO_NOTHING, days=i / 10) for i in range(7)]
    )
    store.ingest_events([_purchase(f"p{i}", f"c{i}", 1.0 + i / 10) for i in range(0, 7, 2)])
    queries: list[object] = []
    events_frame = store.events_frame

    def counted(*args: object, **kwargs: object) -> object:
        queries.append(kwargs.get("types"))
        return events_frame(*args, **kwargs)

    monkeypatch.setattr(store, "events_frame", counted)
    result = attribute(store, now=at(9), page=3)
    assert len(queries) == 3  # pages of 3, 3 and 1 decisions
    assert result.rewards == pytest.approx({f"d{i}": 40.0 if i % 2 == 0 else 0.0 for i in range(7)})
    queries.clear()
    attribute(store, now=at(9))
    assert queries == []  # nothing pending: no events read


def test_now_needs_a_timezone(store: Store) -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        attribute(store, now=datetime(2024, 5, 9))
