"""Helpers shared by the store tests, importable by spawned worker processes."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from decisioning.records import Event, EventType
from decisioning.store import IngestResult, open_store

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    """A moment ``hours`` after the tests' origin."""
    return T0 + timedelta(hours=hours)


def counted_events(customer_ids: Sequence[str], n: int, *, prefix: str, seed: int) -> list[Event]:
    """``n`` app opens and purchases (value 1) spread over the customers, in random order."""
    rng = random.Random(seed)
    events = [
        Event(
            event_id=f"{prefix}-{i}",
            customer_id=rng.choice(list(customer_ids)),
            ts=at(rng.uniform(0, 240)),
            type=EventType.APP_OPEN if i % 3 else EventType.PURCHASE,
            value=None if i % 3 else 1.0,
        )
        for i in range(n)
    ]
    rng.shuffle(events)
    return events


def expected_counts(events: Sequence[Event]) -> dict[str, tuple[int, int]]:
    """(app opens, purchases) per customer, each distinct event counted once."""
    out: dict[str, list[int]] = {}
    for event in {e.event_id: e for e in events}.values():
        counts = out.setdefault(event.customer_id, [0, 0])
        counts[0 if event.type is EventType.APP_OPEN else 1] += 1
    return {cid: (a, p) for cid, (a, p) in out.items()}


def ingest_in_batches(url: str, events: Sequence[Event], batch: int) -> IngestResult:
    """Open the store at ``url`` (own engine) and ingest ``events`` in batches."""
    total = IngestResult()
    with open_store(url) as store:
        for start in range(0, len(events), batch):
            total = total + store.ingest_events(events[start : start + batch])
    return total


def ingest_after_barrier(
    url: str, events: Sequence[Event], batch: int, barrier: Any, results: Any
) -> None:
    """Process entry point: open the store, wait for every worker, ingest, report the result."""
    with open_store(url) as store:
        store.count_customers()  # connect before the race starts
        barrier.wait(timeout=120)
        total = IngestResult()
        for start in range(0, len(events), batch):
            total = total + store.ingest_events(events[start : start + batch])
    results.put(total)
