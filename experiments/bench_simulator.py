"""Benchmark of the simulator: how fast it writes history, and how often doing nothing is best.

Run ``python -m experiments.bench_simulator`` (defaults: 100,000 customers x 30 days, uniform
logging policy); prints a table and writes the figures as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from decisioning.actions import ActionSpace
from experiments.simulator import (
    LOGGING_POLICIES,
    OBJECTIVES,
    SimulationConfig,
    Simulator,
    oracle_actions,
    simulate,
)

_REFERENCE_CUSTOMER_DAYS = 100_000 * 30


def nothing_best_share(
    sim: Simulator, idx: np.ndarray, ts: np.ndarray, actions: ActionSpace, objective: str
) -> float:
    """Share of the moments where doing nothing is the best action consent allows."""
    if len(idx) == 0:
        return float("nan")
    values = sim.ground_truth(idx, ts, actions, objective)
    return float(np.mean(oracle_actions(values, sim.eligible(idx, ts, actions)) == 0))


def run(customers: int, days: int, seed: int, policy: str) -> dict[str, Any]:
    """Measure one configuration; returns the figures."""
    actions = ActionSpace.build()
    fresh = Simulator(customers, seed=seed)
    idx, ts = fresh.decision_moments(0)
    started = time.perf_counter()
    fresh_share = {name: nothing_best_share(fresh, idx, ts, actions, name) for name in OBJECTIVES}
    truth_seconds = time.perf_counter() - started

    config = SimulationConfig(customers=customers, days=days, seed=seed, policy=policy)  # type: ignore[arg-type]
    middle = days // 2
    during: dict[str, float] = {}
    hook_seconds = 0.0

    def measure(sim: Simulator, day: int, idx: np.ndarray, ts: np.ndarray) -> None:
        nonlocal hook_seconds
        if day == middle:
            t = time.perf_counter()
            for name in OBJECTIVES:
                during[name] = nothing_best_share(sim, idx, ts, actions, name)
            hook_seconds = time.perf_counter() - t

    started = time.perf_counter()
    history = simulate(config, on_day=measure)
    simulate_seconds = time.perf_counter() - started - hook_seconds

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        paths = history.write(tmp, format="parquet")
        write_seconds = time.perf_counter() - started
        written_bytes = sum(p.stat().st_size for p in paths.values())

    customer_days = customers * days
    events = history.events
    return {
        "customers": customers,
        "days": days,
        "seed": seed,
        "policy": policy,
        "cpu_count_visible": _cpus(),
        "python": platform.python_version(),
        "simulate_seconds": round(simulate_seconds, 3),
        "write_parquet_seconds": round(write_seconds, 3),
        "parquet_bytes": written_bytes,
        "customers_per_second": round(customers / simulate_seconds, 1),
        "customer_days_per_second": round(customer_days / simulate_seconds, 1),
        "seconds_for_100k_x_30d": round(
            simulate_seconds * _REFERENCE_CUSTOMER_DAYS / customer_days, 2
        ),
        "events_written": len(events),
        "contacts_written": len(history.contacts),
        "events_by_type": {str(k): int(v) for k, v in events.type.value_counts().items()},
        "decision_moments_day0": len(idx),
        "ground_truth_seconds_day0_both_objectives": round(truth_seconds, 3),
        "nothing_best_share_fresh": {k: round(v, 4) for k, v in fresh_share.items()},
        f"nothing_best_share_day{middle}_under_{policy}": {
            k: round(v, 4) for k, v in during.items()
        },
    }


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def print_table(figures: dict[str, Any]) -> None:
    rows = [(k, v) for k, v in figures.items() if not isinstance(v, dict)]
    rows += [
        (f"{k}[{name}]", value)
        for k, v in figures.items()
        if isinstance(v, dict) and k != "events_by_type"
        for name, value in v.items()
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", choices=LOGGING_POLICIES, default="uniform")
    parser.add_argument("--json", type=Path, default=Path("data/bench/simulator.json"))
    args = parser.parse_args(argv)
    figures = run(args.customers, args.days, args.seed, args.policy)
    print_table(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written {args.json}")
    return figures


if __name__ == "__main__":
    main()
