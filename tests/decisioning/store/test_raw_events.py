"""Raw events kept by the store: stored once, resolved through identity links, read back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.actions import DO_NOTHING, Action
from decisioning.channels import Channel
from decisioning.decision import Decision
from decisioning.errors import InvalidInput
from decisioning.history import EVENT_COLUMNS, History
from decisioning.history_parse import TEXT_DTYPE, TIMESTAMP_DTYPE
from decisioning.records import Contact, Customer, Event, EventType
from decisioning.store import Store, open_store
from tests.decisioning.store.support import T0, at
from tests.decisioning.store.test_bulk import _history, _ingest_in_real_time


def _expected_events(history: History, *, as_received: bool) -> pd.DataFrame:
    """The history's events as the store should give them back (customers resolved)."""
    frame = history.events.copy()
    links = {"v0": "c1", "v1": "c2"}  # the identify events of the test history, at hour 100
    anonymous = frame["customer_id"] == ""
    linked = frame["anonymous_id"].map(links).fillna("")
    resolve = anonymous & (linked != "")
    if as_received:
        resolve &= frame["ts"] >= at(100)
    frame.loc[resolve, "customer_id"] = linked[resolve]
    return frame.sort_values(["ts", "event_id"], ignore_index=True)[list(EVENT_COLUMNS)]


def test_events_are_stored_once_with_every_field(store: Store) -> None:
    purchase = Event(
        "e1", "c0", at(1), EventType.PURCHASE, channel=Channel.EMAIL, contact_id="k9",
        value=20.5, category="shoes",
    )  # fmt: skip
    store.ingest_events([purchase, Event("e2", "c0", at(2), EventType.APP_OPEN)])
    store.ingest_events([purchase])  # a re-delivery
    assert list(store.iter_events()) == [
        purchase,
        Event("e2", "c0", at(2), EventType.APP_OPEN),
    ]
    frame = store.events_frame()
    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert frame["ts"].dtype == TIMESTAMP_DTYPE and frame["event_id"].dtype == TEXT_DTYPE
    assert frame.loc[0, "ts"] == pd.Timestamp(at(1))
    assert frame.loc[0, "channel"] == "email" and frame.loc[0, "contact_id"] == "k9"
    assert frame.loc[0, "value"] == 20.5 and np.isnan(frame.loc[1, "value"])
    assert frame.loc[1, "category"] == "" and frame.loc[1, "anonymous_id"] == ""


def test_visitor_events_get_their_customer_when_identified(store: Store) -> None:
    store.ingest_events([Event("a1", "", at(1), EventType.WEB_VISIT, anonymous_id="v1")])
    assert store.events_frame()["customer_id"].tolist() == [""]
    store.ingest_events(
        [
            Event("i1", "c7", at(2), EventType.IDENTIFY, anonymous_id="v1"),
            Event("a2", "", at(3), EventType.WEB_VISIT, anonymous_id="v1"),
        ]
    )
    store.ingest_events([Event("a3", "", at(4), EventType.PURCHASE, anonymous_id="v1")])
    resolved = store.events_frame()
    assert resolved["customer_id"].tolist() == ["c7"] * 4
    # as the service saw them: only the visit before the identify stayed with the visitor
    received = store.events_frame(as_received=True)
    assert received["customer_id"].tolist() == ["", "c7", "c7", "c7"]
    assert [e.event_id for e in store.iter_events(customer_ids=["c7"])] == ["a1", "i1", "a2", "a3"]


@pytest.mark.parametrize("as_received", [False, True])
def test_bulk_and_real_time_store_the_same_events(
    store: Store, tmp_path: Path, as_received: bool
) -> None:
    history = _history()
    store.ingest_history(history)
    with open_store(f"sqlite:///{tmp_path / 'rt.db'}", create=True) as reference:
        _ingest_in_real_time(reference, history)
        streamed = reference.events_frame(as_received=as_received)
    loaded = store.events_frame(as_received=as_received)
    expected = _expected_events(history, as_received=as_received)
    pd.testing.assert_frame_equal(loaded, expected)
    pd.testing.assert_frame_equal(streamed, expected)


def test_loading_a_history_twice_stores_each_event_once(store: Store) -> None:
    history = _history()
    store.ingest_history(history)
    again = store.ingest_history(history)
    assert again.events.applied == 0
    assert len(store.events_frame()) == len(history.events)


def test_queries_filter_by_time_type_and_customer(store: Store) -> None:
    history = _history()
    store.ingest_history(history)
    events = _expected_events(history, as_received=False)
    since, until = at(50), at(150)
    window = store.events_frame(since, until, types=["purchase", EventType.UNSUBSCRIBE])
    mask = (
        (events["ts"] >= since) & (events["ts"] < until)
        & events["type"].isin(["purchase", "unsubscribe"])
    )  # fmt: skip
    assert window["event_id"].tolist() == events.loc[mask, "event_id"].tolist()
    mine = store.events_frame(customer_ids=["c1", "c3"])
    assert (
        mine["event_id"].tolist()
        == events.loc[events["customer_id"].isin(["c1", "c3"]), "event_id"].tolist()
    )
    records = list(store.iter_events(since, until, types=["purchase", "unsubscribe"], page=7))
    assert [e.event_id for e in records] == window["event_id"].tolist()
    with pytest.raises(InvalidInput, match="not_a_type"):
        store.events_frame(types=["not_a_type"])


def test_stored_events_form_a_valid_history(store: Store) -> None:
    history = _history()
    store.ingest_history(history)
    again = History.from_frames(
        customers=history.customers,
        contacts=history.contacts,
        events=store.events_frame(as_received=True),
    )
    assert len(again.events) == len(history.events)


def _decision(decision_id: str, action: Action, hours: float, customer: str = "c0") -> Decision:
    return Decision(
        decision_id=decision_id,
        customer_id=customer,
        decided_at=at(hours),
        objective_id="o1",
        objective_version=2,
        action=action,
        send_at=None if action.is_nothing else at(hours + 1),
        propensity=0.25,
        model_version="o1/3",
        actions=("none", "email@now"),
        distribution=(0.75, 0.25),
        eligible=(True, True),
    )


def test_decision_log_frame_joins_what_was_sent(store: Store) -> None:
    email = Action(Channel.EMAIL)
    store.log_decisions(
        [_decision("d1", email, 1), _decision("d2", DO_NOTHING, 2), _decision("d3", email, 3)]
    )
    store.update_decision_status("d1", "sent", at=at(1.5))
    store.ingest_contacts(
        [Contact("d1", "c0", at(1), Channel.EMAIL, send_at=at(1.5), cost=0.02, decision_id="d1")]
    )
    store.update_decision_status("d3", "cancelled", at=at(3.5))
    frame = store.decisions_frame()
    assert frame["decision_id"].tolist() == ["d1", "d2", "d3"]
    assert frame.loc[0, "sent_at"] == pd.Timestamp(at(1.5)) and frame.loc[0, "sent_cost"] == 0.02
    assert pd.isna(frame.loc[2, "sent_at"]) and frame.loc[2, "status"] == "cancelled"
    assert frame.loc[1, "slot"] == "" and frame.loc[0, "objective_version"] == 2
    # a cancelled contact can never be rewarded; the sent one and the do-nothing one can
    assert store.decisions_frame(pending_rewards=True)["decision_id"].tolist() == ["d1", "d2"]
    page = store.decisions_frame(after=(at(1), "d1"), limit=1)
    assert page["decision_id"].tolist() == ["d2"]


def test_batch_rewards_never_overwrite_a_reward(store: Store) -> None:
    store.log_decisions([_decision(f"d{i}", DO_NOTHING, i) for i in range(3)])
    store.set_reward("d1", 9.0, "explicit")
    done = store.set_rewards({"d0": 1.5, "d1": -2.0, "d2": 0.0}, source="attributed", at=at(9))
    assert sorted(done) == ["d0", "d2"]
    got = {i: store.get_decision(i) for i in ("d0", "d1", "d2")}
    assert (got["d0"].reward, got["d0"].reward_source) == (1.5, "attributed")
    assert got["d0"].rewarded_at == at(9)
    assert (got["d1"].reward, got["d1"].reward_source) == (9.0, "explicit")
    assert store.decisions_frame(pending_rewards=True).empty
    with pytest.raises(InvalidInput, match="finite"):
        store.set_rewards({"d0": float("nan")}, source="attributed")


def test_contacts_outside_the_log_are_those_of_a_history(store: Store) -> None:
    store.log_decisions([_decision("d1", Action(Channel.EMAIL), 1)])
    store.ingest_contacts(
        [
            Contact("d1", "c0", at(1), Channel.EMAIL, decision_id="d1"),  # a logged decision sent
            Contact("k1", "c0", at(2), Channel.SMS, decision_id="d1"),  # names a logged one
            Contact("k2", "c0", at(3), Channel.PUSH, cost=0.01, propensity=0.5),
        ]
    )
    assert store.contacts_frame()["contact_id"].tolist() == ["d1", "k1", "k2"]
    outside = store.contacts_frame(outside_log=True)
    assert outside["contact_id"].tolist() == ["k2"]
    assert outside.loc[0, "propensity"] == 0.5 and outside.loc[0, "channel"] == "push"
    assert outside.loc[0, "send_at"] == pd.Timestamp(at(3))


def test_profiles_of_known_customers(store: Store, customers: list[Customer]) -> None:
    store.upsert_customers(customers)
    store.ingest_events([Event("e1", "stranger", at(1), EventType.APP_OPEN)])
    store.ingest_events([Event("u1", "c0", at(2), EventType.UNSUBSCRIBE, channel=Channel.EMAIL)])
    profiles = {p.customer_id: p for p in store.iter_profiles(page=2)}
    assert sorted(profiles) == ["c0", "c1", "c2"]
    assert profiles["c0"].consents["email"] is False and profiles["c1"].consents["email"] is True
    assert profiles["c1"].attributes == {"plan": "gold", "age": 31}
    assert profiles["c0"].signup_at == (T0 - timedelta(days=30)).timestamp()
    assert {p.customer_id for p in store.iter_profiles(known_only=False)} >= {"stranger"}


def test_a_link_changed_while_a_batch_was_prepared_is_followed(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An identify committed between a batch's unlocked read and its write re-routes it."""
    from decisioning.store.customers import VisitorBook

    store.ingest_events([Event("i1", "c7", at(1), EventType.IDENTIFY, anonymous_id="v1")])
    encode = VisitorBook.encode
    calls = []

    def encode_then_relink(book: VisitorBook, ids: object) -> None:
        if not calls:  # another process links the visitor to another customer meanwhile
            calls.append(1)
            with open_store(store_url) as other:
                other.ingest_events(
                    [Event("i2", "c8", at(2), EventType.IDENTIFY, anonymous_id="v1")]
                )
        encode(book, ids)

    monkeypatch.setattr(VisitorBook, "encode", encode_then_relink)
    store.ingest_events([Event("a1", "", at(3), EventType.WEB_VISIT, anonymous_id="v1")])
    assert calls
    frame = store.events_frame().set_index("event_id")
    assert frame.loc["a1", "customer_id"] == "c8"
    assert store.get_state("c8").web_visits == 1 and store.get_state("c7").web_visits == 0
