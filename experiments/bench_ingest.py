"""Benchmark of event ingestion into the store: real-time batches and bulk history loads.

Measures events per second for

* ``baseline``: plain ``sqlite3`` ``executemany`` INSERT of the same event rows into a bare table
  (no state, no idempotency): the ceiling of what SQLite can take;
* ``realtime``: ``Store.ingest_events`` in batches (idempotent, states locked, loaded, updated
  and written back), by one process or by several processes at once;
* ``bulk``: ``Store.ingest_history`` of the whole history (customers, contacts, events);

on SQLite (WAL) and, with ``--postgres-url``, on PostgreSQL. Prints a table and writes JSON.

Usage: ``python -m experiments.bench_ingest [--events 50000] [--customers 5000]``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from decisioning.history import History
from decisioning.records import Event
from decisioning.store import open_store
from decisioning.store.engine import JSON_LIBRARY

T0 = datetime(2024, 5, 1, tzinfo=UTC)
_TYPES = [
    "open",
    "click",
    "app_open",
    "web_visit",
    "delivered",
    "purchase",
    "support_ticket_opened",
]
_WEIGHTS = [20, 6, 25, 25, 20, 3, 1]


def make_history(*, customers: int, events: int, contacts: int, seed: int) -> History:
    """A synthetic history: events and contacts spread over 60 days, 5% of events anonymous."""
    rng = random.Random(seed)
    ids = [f"c{i:07d}" for i in range(customers)]
    span = 60 * 86_400.0
    people = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_at": [T0 - timedelta(days=rng.uniform(1, 900)) for _ in ids],
            "timezone": [rng.choice(["Europe/Paris", "America/New_York", "UTC"]) for _ in ids],
            "consent_email": [rng.random() < 0.9 for _ in ids],
            "consent_sms": [rng.random() < 0.4 for _ in ids],
            "consent_push": [rng.random() < 0.5 for _ in ids],
            "consent_whatsapp": [rng.random() < 0.2 for _ in ids],
            "plan": [rng.choice(["free", "plus", "pro"]) for _ in ids],
        }
    )
    sent = pd.DataFrame(
        {
            "contact_id": [f"k{i}" for i in range(contacts)],
            "customer_id": [rng.choice(ids) for _ in range(contacts)],
            "ts": [T0 + timedelta(seconds=rng.uniform(0, span)) for _ in range(contacts)],
            "channel": [
                rng.choice(["email", "email", "push", "sms", "none"]) for _ in range(contacts)
            ],
        }
    )
    anonymous = [rng.random() < 0.05 for _ in range(events)]
    rows = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(events)],
            "customer_id": ["" if a else rng.choice(ids) for a in anonymous],
            "anonymous_id": [f"v{rng.randrange(customers)}" if a else "" for a in anonymous],
            "ts": sorted(T0 + timedelta(seconds=rng.uniform(0, span)) for _ in range(events)),
            "type": rng.choices(_TYPES, weights=_WEIGHTS, k=events),
            "channel": [rng.choice(["email", "push", ""]) for _ in range(events)],
            "value": [rng.uniform(5, 80) for _ in range(events)],
        }
    )
    rows.loc[rows["type"] != "purchase", "value"] = float("nan")
    return History.from_frames(customers=people, contacts=sent, events=rows, source="bench")


def bench_baseline(path: Path, events: Sequence[Event]) -> float:
    """Seconds to insert the raw event rows with sqlite3 executemany (WAL, one transaction)."""
    rows = [
        (e.event_id, e.customer_id, e.ts.timestamp(), str(e.type),
         e.channel.value if e.channel else None, e.value, e.category, e.anonymous_id)
        for e in events
    ]  # fmt: skip
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE events (event_id TEXT PRIMARY KEY, customer_id TEXT, ts REAL, type TEXT,"
        " channel TEXT, value REAL, category TEXT, anonymous_id TEXT)"
    )
    start = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def _ingest(url: str, events: Sequence[Event], batch: int, barrier: Any) -> tuple[float, float]:
    """Ingest in batches; wall-clock (start, end) so runs in several processes can be joined."""
    with open_store(url) as store:
        store.count_customers()  # connect before the clock starts
        if barrier is not None:
            barrier.wait(timeout=300)
        start = time.time()
        for i in range(0, len(events), batch):
            store.ingest_events(events[i : i + batch])
        return start, time.time()


def bench_realtime(
    url: str, history: History, events: list[Event], batch: int, workers: int
) -> float:
    """Wall seconds for ``workers`` processes to ingest ``events`` (split by customer) in batches."""
    with open_store(url, create=True) as store:
        store.upsert_customers(history.customer_records())
    if workers == 1:
        start, end = _ingest(url, events, batch, None)
        return end - start
    shares: list[list[Event]] = [[] for _ in range(workers)]
    for event in events:  # all events of one customer go to one worker, in time order
        shares[
            zlib.crc32((event.customer_id or event.anonymous_id or "").encode()) % workers
        ].append(event)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(workers)
        with context.Pool(workers) as pool:
            spans = pool.starmap(_ingest, [(url, share, batch, barrier) for share in shares])
    return max(end for _, end in spans) - min(start for start, _ in spans)


def bench_bulk(url: str, history: History) -> float:
    with open_store(url, create=True) as store:
        start = time.perf_counter()
        store.ingest_history(history)
        return time.perf_counter() - start


def _fresh_postgres(url: str) -> None:
    with open_store(url) as store:
        store.drop_all()
        store.create_all()


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2, help="processes for the parallel run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres-url", default=None, help="also measure this (emptied!) database"
    )
    parser.add_argument("--json", type=Path, default=Path("data/bench/ingest.json"))
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    history = make_history(
        customers=args.customers, events=args.events, contacts=args.contacts, seed=args.seed
    )
    events = list(history.event_records())
    n = len(events)
    results: list[dict[str, Any]] = []

    def record(database: str, mode: str, seconds: float, baseline: float | None) -> None:
        results.append(
            {
                "database": database,
                "mode": mode,
                "events": n,
                "seconds": round(seconds, 3),
                "events_per_s": round(n / seconds),
                "vs_baseline": round(baseline / seconds, 3) if baseline else None,
            }
        )

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        folder = Path(tmp)
        base = bench_baseline(folder / "baseline.db", events)
        record("sqlite", "baseline: sqlite3 executemany", base, base)
        seconds = bench_realtime(f"sqlite:///{folder / 'rt.db'}", history, events, args.batch, 1)
        record("sqlite", f"realtime: batches of {args.batch}", seconds, base)
        if args.workers > 1:
            url = f"sqlite:///{folder / 'rt_par.db'}"
            seconds = bench_realtime(url, history, events, args.batch, args.workers)
            record("sqlite", f"realtime: {args.workers} processes", seconds, base)
        seconds = bench_bulk(f"sqlite:///{folder / 'bulk.db'}", history)
        record("sqlite", f"bulk history (+{len(history.contacts)} contacts)", seconds, base)
    if args.postgres_url:
        _fresh_postgres(args.postgres_url)
        seconds = bench_realtime(args.postgres_url, history, events, args.batch, 1)
        record("postgresql", f"realtime: batches of {args.batch}", seconds, None)
        _fresh_postgres(args.postgres_url)
        seconds = bench_bulk(args.postgres_url, history)
        record("postgresql", f"bulk history (+{len(history.contacts)} contacts)", seconds, None)

    report = {
        "events": n,
        "customers": args.customers,
        "contacts": args.contacts,
        "batch": args.batch,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "json": JSON_LIBRARY,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # the machine may be shared: the load before the run says how much of it was ours
        "load_average_1m": round(load, 2),
        "results": results,
    }
    print(
        f"{n} events, {args.customers} customers, load average {load:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"{'database':<11} {'mode':<38} {'seconds':>8} {'events/s':>10} {'x baseline':>10}")
    for row in results:
        ratio = "" if row["vs_baseline"] is None else f"{row['vs_baseline']:.3f}"
        print(
            f"{row['database']:<11} {row['mode']:<38} {row['seconds']:>8.2f} "
            f"{row['events_per_s']:>10,} {ratio:>10}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.json}")
    return report


if __name__ == "__main__":
    main()
