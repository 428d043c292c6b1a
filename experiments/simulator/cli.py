"""``decisioning simulate``: write a simulated history in the data contract."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from rich.console import Console

from experiments.simulator import SimulationConfig, simulate


def run_simulate(
    *,
    out: Path,
    customers: int,
    days: int,
    seed: int,
    logging: str,
    fmt: str,
    console: Console,
    start: datetime | None = None,
) -> None:
    """Simulate ``customers`` over ``days`` under a logging policy and write the three tables."""
    match logging:
        case "uniform" | "legacy":
            policy = logging
        case _:
            raise ValueError(f"--logging must be uniform or legacy, not {logging!r}")
    match fmt:
        case "parquet" | "csv":
            file_format = fmt
        case _:
            raise ValueError(f"--format must be parquet or csv, not {fmt!r}")
    started = time.perf_counter()
    with console.status(f"simulating {customers:,} customers over {days} days"):
        history = simulate(
            SimulationConfig(customers=customers, days=days, seed=seed, policy=policy, start=start)
        )
        paths = history.write(out, format=file_format)
    console.print(
        f"simulated {customers:,} customers x {days} days in {time.perf_counter() - started:.1f}s: "
        f"{len(history.contacts):,} decisions, {len(history.events):,} events -> {out}"
    )
    del paths
