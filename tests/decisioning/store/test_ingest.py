"""Real-time ingestion: idempotency, cold starts, identity merges, contacts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from decisioning.channels import DEFAULT_COSTS, Channel
from decisioning.customer_view import CustomerState
from decisioning.errors import InvalidInput
from decisioning.records import Contact, Customer, Event, EventType
from decisioning.store import IngestResult, Store
from tests.decisioning.store.support import T0, at, counted_events


def test_an_event_id_seen_twice_changes_nothing(store: Store, customers: list[Customer]) -> None:
    store.upsert_customers(customers)
    purchase = Event("e1", "c0", at(1), EventType.PURCHASE, value=20.0, category="shoes")
    assert store.ingest_events([purchase]) == IngestResult(applied=1)
    before = store.get_state("c0").to_dict()
    again = Event("e1", "c0", at(2), EventType.PURCHASE, value=99.0)  # same id, other content
    assert store.ingest_events([purchase, again]) == IngestResult(duplicates=2)
    state = store.get_state("c0")
    assert state.to_dict() == before
    assert (state.purchases, state.monetary) == (1, 20.0)


def test_duplicates_inside_one_batch_apply_once(store: Store) -> None:
    opens = [Event("e1", "c0", at(1), EventType.APP_OPEN)] * 3
    result = store.ingest_events(opens)
    assert (result.applied, result.duplicates) == (1, 2)
    assert store.get_state("c0").app_opens == 1


def test_stored_state_equals_the_state_replayed_in_memory(
    store: Store, customers: list[Customer]
) -> None:
    store.upsert_customers(customers)
    events = counted_events(["c0", "c1", "c2"], 120, prefix="m", seed=3)
    for start in range(0, len(events), 25):  # batches arrive out of time order
        store.ingest_events(events[start : start + 25])
    for customer in customers:
        expected = CustomerState.for_customer(customer)
        mine = [e for e in events if e.customer_id == customer.customer_id]
        for event in sorted(mine, key=lambda e: e.ts):
            expected.apply_event(event)
        got = store.get_state(customer.customer_id)
        assert (got.app_opens, got.purchases) == (expected.app_opens, expected.purchases)
        assert got.monetary == pytest.approx(expected.monetary)
        assert got.last_event == expected.last_event
        assert got.hour_counts == expected.hour_counts


def test_unknown_customer_starts_cold_then_a_record_completes_it(
    store: Store, customers: list[Customer]
) -> None:
    store.ingest_events([Event("e1", "c0", at(1), EventType.WEB_VISIT)])
    cold = store.get_state("c0")
    assert cold is not None and not cold.known and cold.web_visits == 1
    assert store.count_customers() == 1 and store.count_customers(known_only=True) == 0
    store.upsert_customers(customers[:1])
    state = store.get_state("c0")
    assert state.known and state.web_visits == 1  # behaviour kept
    assert state.timezone == "Europe/Paris" and state.attributes == {"plan": "free", "age": 30}
    assert store.count_customers(known_only=True) == 1


def test_customer_record_update_keeps_behaviour(store: Store, customers: list[Customer]) -> None:
    store.upsert_customers(customers)
    store.ingest_events([Event("e1", "c1", at(1), EventType.APP_OPEN)])
    changed = Customer("c1", customers[1].signup_at, consents={Channel.PUSH: True})
    assert store.upsert_customers([changed]) == 1
    state = store.get_state("c1")
    assert state.app_opens == 1
    assert state.consents == {"email": False, "sms": False, "push": True, "whatsapp": False}
    assert state.attributes == {}
    assert list(store.iter_customer_ids(page=2)) == ["c0", "c1", "c2"]
    assert set(store.get_states(["c0", "c2", "nobody"])) == {"c0", "c2"}


def test_identify_merges_the_visitor_and_routes_later_events(store: Store) -> None:
    store.upsert_customers([Customer("c0", T0 - timedelta(days=3))])
    visits = [Event(f"a{i}", "", at(i), EventType.WEB_VISIT, anonymous_id="v1") for i in range(3)]
    assert store.ingest_events(visits) == IngestResult(applied=3, anonymous=3)
    visitor, linked = store.get_visitor("v1")
    assert visitor is not None and visitor.web_visits == 3 and linked is None
    assert store.get_state("c0").web_visits == 0

    identify = Event("i1", "c0", at(5), EventType.IDENTIFY, anonymous_id="v1")
    after = Event("a9", "", at(6), EventType.WEB_VISIT, anonymous_id="v1")
    assert store.ingest_events([after, identify]) == IngestResult(applied=2, merged=1)
    assert store.get_state("c0").web_visits == 4
    assert store.get_visitor("v1") == (None, "c0")

    # identifying again must not merge the visitor a second time
    store.ingest_events([Event("i2", "c0", at(7), EventType.IDENTIFY, anonymous_id="v1")])
    assert store.get_state("c0").web_visits == 4


def test_identify_in_the_same_batch_as_the_anonymous_events(store: Store) -> None:
    batch = [
        Event("a1", "", at(1), EventType.APP_OPEN, anonymous_id="v2"),
        Event("i1", "c5", at(2), EventType.IDENTIFY, anonymous_id="v2"),
        Event("a2", "", at(3), EventType.APP_OPEN, anonymous_id="v2"),
    ]
    assert store.ingest_events(batch) == IngestResult(applied=3, anonymous=1, merged=1)
    assert store.get_state("c5").app_opens == 2


def test_events_without_any_id_or_timezone_are_refused(store: Store) -> None:
    with pytest.raises(InvalidInput, match="e1.*customer_id or an anonymous_id"):
        store.ingest_events([Event("e1", "", at(1), EventType.APP_OPEN)])
    with pytest.raises(InvalidInput, match="e2.*no timezone"):
        store.ingest_events([Event("e2", "c0", at(1).replace(tzinfo=None), EventType.APP_OPEN)])
    assert store.count_customers() == 0


def test_contacts_are_idempotent_and_count_at_send_time(store: Store) -> None:
    sent = Contact("k1", "c0", at(1), Channel.SMS, send_at=at(3), cost=0.2)
    default_cost = Contact("k2", "c0", at(4), Channel.EMAIL)
    nothing = Contact("k3", "c0", at(5), Channel.NONE)
    result = store.ingest_contacts([sent, default_cost, nothing])
    assert (result.applied, result.duplicates) == (3, 0)
    assert store.ingest_contacts([sent, nothing]).duplicates == 2
    state = store.get_state("c0")
    assert state.channels["sms"].contacts == 1 and state.channels["email"].contacts == 1
    assert state.channels["sms"].last_contact == at(3).timestamp()
    assert state.spend == pytest.approx(0.2 + DEFAULT_COSTS[Channel.EMAIL])
    spend = {s.channel: (s.contacts, s.cost) for s in store.spend_by_channel()}
    assert spend == {"email": (1, 0.0), "sms": (1, pytest.approx(0.2))}
