"""No lost updates: concurrent ingestion from threads and processes leaves every counter exact."""

from __future__ import annotations

import multiprocessing
import queue
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from decisioning.records import Customer, Event, EventType
from decisioning.store import Store, open_store
from decisioning.store.customers import CustomerBook
from tests.decisioning.store.support import (
    T0,
    at,
    counted_events,
    expected_counts,
    ingest_after_barrier,
    ingest_in_batches,
)

CUSTOMERS = [f"c{i}" for i in range(6)]


def _check_counts(store: Store, events: list[Event]) -> None:
    expected = expected_counts(events)
    states = store.get_states(CUSTOMERS)
    got = {cid: (s.app_opens, s.purchases) for cid, s in states.items()}
    assert got == expected
    assert sum(s.monetary for s in states.values()) == sum(p for _, p in expected.values())


def _worker_sets(workers: int, per_worker: int) -> tuple[list[list[Event]], list[Event]]:
    """Each worker's events: its own ones plus a half of its neighbour's (overlapping ids)."""
    own = [counted_events(CUSTOMERS, per_worker, prefix=f"w{w}", seed=w) for w in range(workers)]
    sets = [own[w] + own[(w + 1) % workers][: per_worker // 2] for w in range(workers)]
    return sets, [e for events in own for e in events]


def test_four_threads_lose_no_update(store: Store) -> None:
    store.upsert_customers(Customer(cid, T0) for cid in CUSTOMERS[:3])  # half start cold
    sets, unique = _worker_sets(4, 200)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda evs: ingest_in_batches(store.url, evs, 25), sets))
    assert sum(r.applied for r in results) == len(unique)
    assert sum(r.duplicates for r in results) == sum(map(len, sets)) - len(unique)
    _check_counts(store, unique)


def test_three_processes_lose_no_update(store: Store) -> None:
    sets, unique = _worker_sets(3, 300)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=ingest_after_barrier, args=(store.url, evs, 20, barrier, results))
        for evs in sets
    ]
    for worker in workers:
        worker.start()
    done = []
    deadline = time.monotonic() + 180
    while len(done) < len(workers) and time.monotonic() < deadline:
        try:
            done.append(results.get(timeout=0.5))
        except queue.Empty:
            crashed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            assert not crashed, f"a worker process failed (exit codes {crashed})"
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert sum(r.applied for r in done) == len(unique)
    _check_counts(store, unique)


def test_concurrent_identify_and_anonymous_events_apply_once(store: Store) -> None:
    visits = [
        Event(f"a{i}", "", at(i / 10), EventType.WEB_VISIT, anonymous_id=f"v{i % 4}")
        for i in range(80)
    ]
    identifies = [
        Event(f"i{v}", f"c{v}", at(3), EventType.IDENTIFY, anonymous_id=f"v{v}") for v in range(4)
    ]
    halves = [visits[::2] + identifies, identifies + visits[1::2]]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda evs: ingest_in_batches(store.url, evs, 10), halves))
    states = store.get_states([f"c{v}" for v in range(4)])
    total = sum(s.web_visits for s in states.values())
    leftover = [store.get_visitor(f"v{v}")[0] for v in range(4)]
    # every visit sits in exactly one place: a customer (merged or routed) or its visitor
    assert total + sum(v.web_visits for v in leftover if v is not None) == len(visits)
    assert all(store.get_visitor(f"v{v}")[1] == f"c{v}" for v in range(4))
    assert all(v is None for v in leftover)  # identified visitors keep no state of their own


def test_concurrent_spend_adds_up(store: Store) -> None:
    def spend(_: int) -> None:
        for _ in range(25):
            store.add_spend("o1", "2024-05", 0.5)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(spend, range(4)))
    assert store.spent("o1", "2024-05") == 50.0


def test_a_write_between_preparing_and_storing_a_batch_is_not_lost(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer updates the same customer after this batch was folded outside the lock:
    # the version check must notice, and the batch be folded again from the locked rows.
    other = Event("other", "c0", at(1), EventType.APP_OPEN)
    encode = CustomerBook.encode
    calls = []

    def encode_then_interfere(book: CustomerBook) -> None:
        encode(book)
        if not calls:
            calls.append(1)
            with open_store(store.url) as second:
                second.ingest_events([other])

    monkeypatch.setattr(CustomerBook, "encode", encode_then_interfere)
    mine = [Event(f"m{i}", "c0", at(2 + i), EventType.APP_OPEN) for i in range(3)]
    assert store.ingest_events(mine).applied == 3
    assert store.get_state("c0").app_opens == 4
