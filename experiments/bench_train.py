"""Benchmark of a training run end to end: history files to a registered policy.

Simulates enough customers over ``--days`` to log about ``--decisions`` decisions (uniform
logging policy, propensities logged), writes them as Parquet, then times what
``decisioning train --data DIR`` does: loading and validating the history, then
``training.pipeline.train`` (training set, propensities, LightGBM and VW learners, off-policy
evaluation, MLflow run and registry), stage by stage. The objective is the premium upsell
example without its segment, so every logged decision is a training example.

    python -m experiments.bench_train --decisions 1000000 --json data/bench/train.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from experiments.bench import machine_info

TARGET_S_PER_MILLION = 300.0
_PILOT_CUSTOMERS = 2_000


def decisions_per_customer_day(days: int, seed: int) -> float:
    """How many decisions the simulated world logs per customer and day (a small pilot run)."""
    from experiments.simulator import SimulationConfig, simulate

    pilot = simulate(SimulationConfig(customers=_PILOT_CUSTOMERS, days=days, seed=seed + 1))
    return len(pilot.contacts) / (_PILOT_CUSTOMERS * days)


@contextmanager
def timing(owner: Any, name: str, totals: dict[str, float]) -> Iterator[None]:
    """Add the time spent in ``owner.name`` to ``totals[label]`` while the block runs."""
    original = getattr(owner, name)
    label = f"{getattr(owner, '__name__', owner)}.{name}"

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[label] = totals.get(label, 0.0) + time.perf_counter() - start

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def _cpu_seconds() -> float:
    """CPU time of this process and of the child processes it has waited for (parallel stages)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(*, decisions: int, days: int, seed: int) -> dict[str, Any]:
    """Simulate, write, then time loading and training; the report."""
    from decisioning.history import load_history
    from decisioning.settings import Settings
    from experiments.quality import example_objective
    from experiments.simulator import SimulationConfig, simulate
    from models.outcome import RewardModel
    from models.vw_bandit import VWBandit
    from training import pipeline

    rate = decisions_per_customer_day(days, seed)
    customers = max(100, math.ceil(decisions / (rate * days)))
    start = time.perf_counter()
    history = simulate(SimulationConfig(customers=customers, days=days, seed=seed))
    simulate_s = time.perf_counter() - start
    objective = example_objective("premium_upsell").model_copy(update={"segment": ""})
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        folder = Path(tmp)
        history.write(folder / "history", format="parquet")
        n_logged, n_events = len(history.contacts), len(history.events)
        del history
        settings = Settings(data_dir=folder / "data", seed=seed)

        start, start_cpu = time.perf_counter(), _cpu_seconds()
        loaded = load_history(folder / "history")
        load_s = time.perf_counter() - start

        load_cpu = _cpu_seconds() - start_cpu
        marks: list[tuple[str, float, float]] = []

        def progress(what: str, _share: float) -> None:
            marks.append((what, time.perf_counter(), _cpu_seconds()))

        inner: dict[str, float] = {}
        with (
            timing(RewardModel, "fit", inner),
            timing(RewardModel, "predict", inner),
            timing(VWBandit, "fit", inner),
            timing(VWBandit, "action_distributions", inner),
            timing(pipeline, "evaluate_policies", inner),
            timing(pipeline, "log_policy", inner),
        ):
            start = time.perf_counter()
            result = pipeline.train(
                objective=objective, customers=loaded.customers, contacts=loaded.contacts,
                events=loaded.events, settings=settings, progress=progress,
            )  # fmt: skip
            train_s = time.perf_counter() - start
            cpu_s = _cpu_seconds() - start_cpu
    stages = {"load and validate history": load_s}
    stages_cpu = {"load and validate history": load_cpu}
    names = {
        "building the training set": "features (training set)",
        "estimating propensities": "propensities",
        "fitting the learners": "learners (LightGBM, VW, baselines)",
        "evaluating off-policy": "off-policy evaluation",
        "logging to MLflow": "MLflow run and registry",
    }
    bounds = [(start, start_cpu + load_cpu), *[(t, c) for _, t, c in marks[1:]]]
    for (what, _, _), begin, end in zip(marks, bounds, bounds[1:], strict=False):
        stages[names.get(what, what)] = end[0] - begin[0]
        stages_cpu[names.get(what, what)] = end[1] - begin[1]
    total = load_s + train_s
    examples = int(result.metrics.get("n_train", 0) + result.metrics.get("n_test", 0))
    return {
        "decisions": n_logged,
        "requested_decisions": decisions,
        "examples": examples,
        "events": n_events,
        "customers": customers,
        "days": days,
        "simulate_s": simulate_s,
        "stages_s": stages,
        "stages_cpu_s": stages_cpu,
        "inside_s": {
            "lightgbm fit (reward and outcome models)": inner.get("RewardModel.fit", 0.0),
            "lightgbm predict": inner.get("RewardModel.predict", 0.0),
            "vw fit": inner.get("VWBandit.fit", 0.0),
            "vw predict": inner.get("VWBandit.action_distributions", 0.0),
            "ope estimators": inner.get("training.pipeline.evaluate_policies", 0.0),
            "mlflow model logging": inner.get("training.pipeline.log_policy", 0.0),
        },
        "train_s": train_s,
        "total_s": total,
        "total_s_per_million": total * 1e6 / max(n_logged, 1),
        "cpu_s": cpu_s,
        "cpu_s_per_million": cpu_s * 1e6 / max(n_logged, 1),
        "candidate": result.candidate,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "target_s_per_million": TARGET_S_PER_MILLION,
        "machine": machine_info(),
    }


def print_table(r: dict[str, Any], out: Callable[[str], None] = print) -> None:
    out(
        f"Training end to end: {r['decisions']:,} logged decisions ({r['examples']:,} examples), "
        f"{r['events']:,} events, {r['customers']:,} customers x {r['days']} days"
    )
    cpu = r.get("stages_cpu_s", {})
    for stage, seconds in r["stages_s"].items():
        out(f"  {stage:<42}{seconds:>9.1f} s  (CPU {cpu.get(stage, float('nan')):.1f} s)")
    for part, seconds in r["inside_s"].items():
        out(f"    of which {part:<33}{seconds:>9.1f} s")
    out(
        f"  {'total':<42}{r['total_s']:>9.1f} s  ({r['total_s_per_million']:.0f} s per million "
        f"decisions; target <= {TARGET_S_PER_MILLION:.0f} s); peak RSS {r['peak_rss_gb']:.1f} GB"
    )
    out(
        f"  CPU time {r['cpu_s']:.1f} s ({r['cpu_s_per_million']:.0f} s per million decisions) on "
        f"a machine whose 1-minute load was {r['machine']['load_average_1m']} on "
        f"{r['machine']['cores']} cores"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000, help="logged decisions")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("data/bench/train.json"))
    args = parser.parse_args(argv)
    report = run(decisions=args.decisions, days=args.days, seed=args.seed)
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
