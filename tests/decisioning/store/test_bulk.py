"""Bulk history load: the same states as real-time ingestion, idempotent, chunked safely."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import pytest

from decisioning.history import History
from decisioning.history_replay import EVENT
from decisioning.store import Store, open_store
from tests.decisioning.store.support import T0, at

CUSTOMERS = [f"c{i}" for i in range(8)]
TYPES = ["open", "click", "purchase", "app_open", "web_visit", "unsubscribe", "delivered"]


def _history(seed: int = 0, n_events: int = 300, n_contacts: int = 80) -> History:
    rng = random.Random(seed)
    customers = pd.DataFrame(
        {
            "customer_id": CUSTOMERS,
            "signup_at": [T0 - pd.Timedelta(days=10 + i) for i in range(len(CUSTOMERS))],
            "timezone": ["Europe/Paris", "America/New_York"] * (len(CUSTOMERS) // 2),
            "consent_email": [True] * len(CUSTOMERS),
            "consent_sms": [i % 2 == 0 for i in range(len(CUSTOMERS))],
            "consent_push": [False] * len(CUSTOMERS),
            "consent_whatsapp": [False] * len(CUSTOMERS),
            "plan": ["gold", "free"] * (len(CUSTOMERS) // 2),
        }
    )
    channels = ["email", "sms", "push", "paid_social", "none"]
    contacts = pd.DataFrame(
        [
            {
                "contact_id": f"k{i}",
                "customer_id": rng.choice(CUSTOMERS),
                "ts": at(h := rng.uniform(0, 200)),
                "send_at": at(h + rng.choice([0, 0, 3.5])),
                "channel": rng.choice(channels),
                "cost": rng.choice([0.1, None]),
            }
            for i in range(n_contacts)
        ]
    )
    rows = []
    for i in range(n_events):
        anonymous = rng.random() < 0.2
        rows.append(
            {
                "event_id": f"e{i}",
                "customer_id": "" if anonymous else rng.choice(CUSTOMERS),
                "anonymous_id": f"v{rng.randrange(4)}" if anonymous else "",
                "ts": at(rng.uniform(0, 200)),
                "type": rng.choice(TYPES),
                "channel": rng.choice(["email", "sms", ""]),
                "value": rng.choice([5.0, None]),
            }
        )
    # two visitors are identified mid-way, one never is
    for v, cid in ((0, "c1"), (1, "c2")):
        rows.append(
            {"event_id": f"id{v}", "customer_id": cid, "anonymous_id": f"v{v}", "ts": at(100),
             "type": "identify", "channel": "", "value": None}
        )  # fmt: skip
    return History.from_frames(customers=customers, contacts=contacts, events=pd.DataFrame(rows))


def _ingest_in_real_time(store: Store, history: History, batch: int = 40) -> None:
    """Feed a history through the real-time API, in time order, in batches of one kind."""
    store.upsert_customers(history.customer_records())
    events, contacts = list(history.event_records()), list(history.contact_records())
    stream = history.replay()
    pending: list = []
    kind = None
    for row_kind, row in zip(stream.kind.tolist(), stream.row.tolist(), strict=True):
        if pending and (row_kind != kind or len(pending) == batch):
            (store.ingest_events if kind == EVENT else store.ingest_contacts)(pending)
            pending = []
        kind = row_kind
        pending.append(events[row] if row_kind == EVENT else contacts[row])
    if pending:
        (store.ingest_events if kind == EVENT else store.ingest_contacts)(pending)


@pytest.fixture
def reference(tmp_path: Path) -> Store:
    history = _history()
    with open_store(f"sqlite:///{tmp_path / 'reference.db'}", create=True) as store:
        _ingest_in_real_time(store, history)
        yield store


@pytest.mark.parametrize("chunk", [1, 3, 20_000])
def test_bulk_load_builds_the_real_time_states(store: Store, reference: Store, chunk: int) -> None:
    history = _history()
    result = store.ingest_history(history, chunk=chunk)
    assert result.customers == len(CUSTOMERS)
    assert result.events.applied == len(history.events) and result.events.duplicates == 0
    assert result.events.merged == 2
    assert result.contacts.applied == len(history.contacts)
    for cid in CUSTOMERS:
        assert store.get_state(cid).to_dict() == reference.get_state(cid).to_dict(), cid
    for v in range(4):
        mine, theirs = store.get_visitor(f"v{v}"), reference.get_visitor(f"v{v}")
        assert mine[1] == theirs[1]
        assert (mine[0] and mine[0].to_dict()) == (theirs[0] and theirs[0].to_dict())
    assert store.get_visitor("v0")[1] == "c1" and store.get_visitor("v3")[0] is not None


def test_loading_a_history_twice_changes_nothing(store: Store) -> None:
    history = _history()
    store.ingest_history(history)
    before = {cid: s.to_dict() for cid, s in store.get_states(CUSTOMERS).items()}
    again = store.ingest_history(history)
    assert again.events.applied == 0 and again.events.duplicates == len(history.events)
    assert again.contacts.applied == 0
    assert {cid: s.to_dict() for cid, s in store.get_states(CUSTOMERS).items()} == before


def test_bulk_load_continues_from_stored_states(store: Store, tmp_path: Path) -> None:
    history = _history()
    split = at(100)
    early = History.from_frames(
        customers=history.customers,
        contacts=history.contacts[history.contacts["send_at"] < split],
        events=history.events[history.events["ts"] < split],
    )
    first = store.ingest_history(early)
    second = store.ingest_history(history)  # the early part is skipped, the rest continues
    assert first.events.applied + second.events.applied == len(history.events)
    assert second.events.duplicates == len(early.events)
    with open_store(f"sqlite:///{tmp_path / 'once.db'}", create=True) as once:
        once.ingest_history(history)
        for cid in CUSTOMERS:
            assert store.get_state(cid).to_dict() == once.get_state(cid).to_dict(), cid
