"""Benchmark of decisions in process: single-decision latency and batch throughput.

A simulated history is loaded into a SQLite store, the premium upsell objective (31 actions)
is registered, and a LightGBM greedy policy and a VW bandit are trained on the history. Then,
through ``DecisionEngine``:

* ``decide`` for random customers of the objective's segment, logged as in production: p50 and
  p99 latency, split into policy time, store reads (state, pending sends, budget), store
  writes (decision log, budget reservation) and the rest (guardrails, features, explanation);
* ``decide_many`` over every customer: customers per second, against a bare loop over the same
  chunks that only reads the states and draws a uniform action (measured in the same run);
* the same batch split across processes (``decisioning decide --workers``, each process with
  its own engine and store on a copy of the database): customers per second together,
  against one such process deciding them all in the same conditions.

    python -m experiments.bench_decisions --customers 20000 --days 14 --json data/bench/decisions.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from decisioning.guardrails import ContactPolicy, ContactPolicySettings
from decisioning.history import History
from decisioning.objectives import Objective
from decisioning.policy import DecisionContext, Policy, ServedPolicy
from decisioning.store import Store, open_store
from experiments.bench import machine_info
from experiments.closed_loop.setup import copy_database
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, simulate
from models.compiled import compile_policy
from serving.batch_processes import ProcessBatch
from serving.cli_models import decision_line
from serving.engine import DecisionEngine
from serving.service import settle_memory
from training.dataset import build_training_set
from training.fit import LearnerSettings, fit_candidates, to_batch

TARGET_P99_MS = 1.0
TARGET_BATCH_PER_S = 20_000.0
#: processes a batch is split across in the split measurement (this benchmark's machine: 2 cores)
SPLIT_PROCESSES = 2
LEARNERS = ("lightgbm_greedy", "vw_bandit")
_READS = ("get_state", "get_states", "pending_sends", "pending_sends_many", "spent")
_WRITES = ("log_decision", "log_decisions", "reserve_spend")


class TimedPolicy:
    """A policy that adds the time spent in it to ``elapsed`` (seconds)."""

    def __init__(self, policy: Policy) -> None:
        self.policy, self.name, self.elapsed = policy, policy.name, 0.0

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.policy.action_distribution(context)
        finally:
            self.elapsed += time.perf_counter() - start

    def expected_values(self, context: DecisionContext) -> np.ndarray | None:
        start = time.perf_counter()
        try:
            return self.policy.expected_values(context)
        finally:
            self.elapsed += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        # the combined calls (distribution and values from one prediction), when the policy has
        if name not in ("distribution_and_values", "distributions_and_values"):
            raise AttributeError(name)
        method = getattr(self.policy, name)

        def timed(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.elapsed += time.perf_counter() - start

        return timed

    def action_distributions(self, batch: Any) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.policy.action_distributions(batch)  # type: ignore[attr-defined,no-any-return]
        finally:
            self.elapsed += time.perf_counter() - start

    def values(self, batch: Any) -> np.ndarray:
        start = time.perf_counter()
        try:
            return self.policy.values(batch)  # type: ignore[attr-defined,no-any-return]
        finally:
            self.elapsed += time.perf_counter() - start


class TimedStore:
    """The store, with the time spent reading and writing added to ``read`` and ``write``."""

    def __init__(self, store: Store) -> None:
        self.store, self.read, self.write = store, 0.0, 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        bucket = "read" if name in _READS else "write" if name in _WRITES else None
        if bucket is None:
            return method

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                setattr(self, bucket, getattr(self, bucket) + time.perf_counter() - start)

        return timed


class OnePolicy:
    """A policy source serving one policy for every objective."""

    def __init__(self, policy: TimedPolicy, version: str) -> None:
        self.served = ServedPolicy(policy, version)  # type: ignore[arg-type]

    def policy_for(self, objective: Objective) -> ServedPolicy:
        return self.served


def prepare(
    customers: int, days: int, train_customers: int, seed: int, workdir: Path
) -> dict[str, Any]:
    """Simulate, load the store, register the objective and train both learners."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(days=days + 1)
    history = simulate(SimulationConfig(customers=customers, days=days, seed=seed, start=first))
    timings["simulate_s"] = time.perf_counter() - start

    start = time.perf_counter()
    # the store as the service opens it: states and scheduled sends kept in memory, warmed, the
    # decision log inserted from a helper process
    store = open_store(
        f"sqlite:///{workdir / 'bench.db'}", create=True, hot=True, hot_ttl=3600.0, log_process=True
    )
    frames = {"customers": history.customers, "contacts": history.contacts,
              "events": history.events}  # fmt: skip
    store.ingest_history(History.from_frames(**frames))
    objective = example_objective("premium_upsell").activate()
    store.save_objective(objective.model_dump(mode="json"))
    timings["load_store_s"] = time.perf_counter() - start
    copy_database(workdir / "bench.db", workdir / "before_batches.db")  # split batches start here
    start = time.perf_counter()
    store.warm()
    timings["warm_s"] = time.perf_counter() - start

    start = time.perf_counter()
    ids = history.customers["customer_id"].to_numpy(dtype=object)
    sub = set(ids[:train_customers])
    data = build_training_set(
        customers=history.customers[history.customers["customer_id"].isin(sub)],
        contacts=history.contacts[history.contacts["customer_id"].isin(sub)],
        events=history.events[history.events["customer_id"].isin(sub)],
        objective=objective,
        policy=ContactPolicy(ContactPolicySettings().merged(objective.guardrails)),
        seed=seed,
    )
    fitted = fit_candidates(to_batch(data), LearnerSettings(seed=seed))
    timings["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for name in LEARNERS:  # as the service does when it loads a champion
        compile_policy(fitted.policies[name], workdir / "compiled")
    timings["compile_s"] = time.perf_counter() - start
    settle_memory()  # as the service does once started (serving.service.build_engine)
    basic = history.customers.loc[history.customers["plan"] == "basic", "customer_id"]
    return {
        "store": store,
        "objective": objective,
        "policies": {name: fitted.policies[name] for name in LEARNERS},
        "customer_ids": [str(c) for c in ids],
        "before_batches": workdir / "before_batches.db",
        "segment_ids": [str(c) for c in basic],
        "as_of": first + timedelta(days=days, hours=1),
        "training_examples": len(data),
        "timings": timings,
    }


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) * 1e3


def single_latency(
    world: dict[str, Any], learner: str, requests: int, warmup: int, seed: int
) -> dict[str, Any]:
    """``decide`` for random segment customers, one at a time: latency and where it goes."""
    policy = TimedPolicy(world["policies"][learner])
    store = TimedStore(world["store"])
    engine = DecisionEngine(
        store=store,  # type: ignore[arg-type]
        policies=OnePolicy(policy, f"bench/{learner}"),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    ids = world["segment_ids"]
    picks = [ids[i] for i in rng.integers(0, len(ids), warmup + requests)]
    total, cpu, pol, read, write = (np.zeros(requests) for _ in range(5))
    for k, cid in enumerate(picks):
        policy.elapsed = store.read = store.write = 0.0
        start, start_cpu = time.perf_counter(), time.thread_time()
        engine.decide(cid, as_of=world["as_of"])
        spent, spent_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
        if k >= warmup:
            i = k - warmup
            total[i], pol[i], read[i], write[i] = spent, policy.elapsed, store.read, store.write
            cpu[i] = spent_cpu
    rest = total - pol - read - write
    return {
        "requests": requests,
        "p50_ms": _pct(total, 50),
        "p99_ms": _pct(total, 99),
        "mean_ms": float(total.mean()) * 1e3,
        "cpu_p50_ms": _pct(cpu, 50),
        "cpu_p99_ms": _pct(cpu, 99),
        "policy_p50_ms": _pct(pol, 50),
        "policy_p99_ms": _pct(pol, 99),
        "without_policy_p50_ms": _pct(total - pol, 50),
        "without_policy_p99_ms": _pct(total - pol, 99),
        "mean_split_ms": {
            "policy": float(pol.mean()) * 1e3,
            "store_read": float(read.mean()) * 1e3,
            "store_write": float(write.mean()) * 1e3,
            "guardrails_features_explanation": float(rest.mean()) * 1e3,
        },
        "policy_share": float(pol.sum() / total.sum()),
    }


def batch_throughput(world: dict[str, Any], learner: str, seed: int) -> dict[str, Any]:
    """``decide_many`` over every customer, logged: customers per second."""
    policy = TimedPolicy(world["policies"][learner])
    engine = DecisionEngine(
        store=world["store"], policies=OnePolicy(policy, f"bench/{learner}"), seed=seed
    )
    ids = world["customer_ids"]
    start, start_cpu = time.perf_counter(), time.process_time()
    count = sum(1 for _ in engine.decide_many(ids, as_of=world["as_of"]))
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {
        "customers": count,
        "seconds": seconds,
        "customers_per_s": count / seconds,
        "customers_per_cpu_s": count / cpu,
        "policy_share": policy.elapsed / seconds,
    }


def split_throughput(
    world: dict[str, Any], learner: str, processes: int, seed: int, workdir: Path
) -> dict[str, Any]:
    """``decisioning decide --workers``'s batch over every customer (``ProcessBatch``).

    Each process opens its own hot store on one copy of the database as it was before any
    batch, and the decisions come back as the command writes them (JSON lines). The rate
    counts from the moment every process had its engine (their start is ``start_s``).
    """
    database = workdir / f"split_{processes}.db"
    shutil.copyfile(world["before_batches"], database)
    url = f"sqlite:///{database}"

    def open_engine() -> DecisionEngine:  # in each forked process, as the service builds it
        store = open_store(url, hot=True, hot_ttl=3600.0, log_process=True)
        store.warm()
        settle_memory()
        policies = OnePolicy(TimedPolicy(world["policies"][learner]), f"bench/{learner}")
        return DecisionEngine(store=store, policies=policies, seed=seed)

    batch = ProcessBatch(
        open_engine, world["customer_ids"], processes=processes, render=decision_line,
        as_of=world["as_of"],
    )  # fmt: skip
    count = sum(len(lines) for lines in batch)
    assert batch.deciding_s is not None and batch.ready_s is not None
    return {
        "processes": processes,
        "customers": count,
        "seconds": batch.deciding_s,
        "customers_per_s": count / batch.deciding_s,
        "start_s": batch.ready_s,
    }


def bare_throughput(
    world: dict[str, Any], seed: int, chunk: int = 500, *, store: Store | None = None
) -> dict[str, Any]:
    """The floor: the same chunks, reading the states and drawing a uniform action only.

    From the engine's (hot) store by default; ``store`` reads them elsewhere (e.g. from the
    database, as a store that is not hot does).
    """
    store, ids = store or world["store"], world["customer_ids"]
    n_actions = len(world["objective"].action_space())
    rng = np.random.default_rng(seed)
    start, start_cpu = time.perf_counter(), time.process_time()
    count = 0
    for first in range(0, len(ids), chunk):
        part = ids[first : first + chunk]
        states = store.get_states(part)
        for cid in part:
            _ = states.get(cid), int(rng.integers(0, n_actions))
            count += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return {"customers": count, "seconds": seconds, "customers_per_s": count / seconds,
            "customers_per_cpu_s": count / cpu}  # fmt: skip


def run(
    *, customers: int, days: int, train_customers: int, requests: int, warmup: int, seed: int
) -> dict[str, Any]:
    """Every measurement of this benchmark, as one report."""
    with tempfile.TemporaryDirectory() as tmp:
        world = prepare(customers, days, train_customers, seed, Path(tmp))
        single = {n: single_latency(world, n, requests, warmup, seed) for n in LEARNERS}
        bare = bare_throughput(world, seed)
        with open_store(world["store"].url) as cold:
            bare_database = bare_throughput(world, seed, store=cold)
        batch: dict[str, Any] = {n: batch_throughput(world, n, seed) for n in LEARNERS}
        world["store"].close()  # before forking: the processes open their own
        split = {
            n: {k: split_throughput(world, n, k, seed, Path(tmp)) for k in (1, SPLIT_PROCESSES)}
            for n in LEARNERS
        }
    for name, runs in split.items():
        one, many = runs[1], runs[SPLIT_PROCESSES]
        batch[name]["split"] = {
            "processes": SPLIT_PROCESSES,
            "customers": many["customers"],
            "customers_per_s": many["customers_per_s"],
            "one_process_customers_per_s": one["customers_per_s"],
            "speedup": many["customers_per_s"] / one["customers_per_s"],
            "start_s": many["start_s"],
        }
    for name in LEARNERS:
        batch[name]["vs_bare"] = batch[name]["customers_per_s"] / bare["customers_per_s"]
        batch[name]["cpu_vs_bare"] = (
            batch[name]["customers_per_cpu_s"] / bare["customers_per_cpu_s"]
        )
        batch[name]["vs_bare_database"] = (
            batch[name]["customers_per_s"] / bare_database["customers_per_s"]
        )
    batch["bare"] = bare
    batch["bare_database"] = bare_database
    return {
        "customers": customers,
        "days": days,
        "actions": len(world["objective"].action_space()),
        "training_examples": world["training_examples"],
        "setup": world["timings"],
        "single": single,
        "batch": batch,
        "targets": {"p99_ms": TARGET_P99_MS, "batch_customers_per_s": TARGET_BATCH_PER_S},
        "machine": machine_info(),
    }


def print_table(report: dict[str, Any], out: Callable[[str], None] = print) -> None:
    out(
        f"Decisions in process: {report['customers']:,} customers x {report['days']} days, "
        f"{report['actions']} actions, SQLite; policies trained on "
        f"{report['training_examples']:,} logged decisions"
    )
    out(f"{'policy':<18}{'p50 ms':>9}{'p99 ms':>9}{'policy p50':>12}{'policy p99':>12}"
        f"{'rest p50':>10}{'rest p99':>10}{'batch /s':>11}{'vs bare':>9}")  # fmt: skip
    for name, s in report["single"].items():
        b = report["batch"][name]
        out(
            f"{name:<18}{s['p50_ms']:>9.3f}{s['p99_ms']:>9.3f}{s['policy_p50_ms']:>12.3f}"
            f"{s['policy_p99_ms']:>12.3f}{s['without_policy_p50_ms']:>10.3f}"
            f"{s['without_policy_p99_ms']:>10.3f}{b['customers_per_s']:>11,.0f}{b['vs_bare']:>9.3f}"
        )
        split = ", ".join(f"{k} {v:.3f}" for k, v in s["mean_split_ms"].items())
        out(f"{'':<18}mean split (ms): {split}")
        out(f"{'':<18}CPU time per decision p50 {s['cpu_p50_ms']:.3f} ms, p99 "
            f"{s['cpu_p99_ms']:.3f} ms; batch {b['customers_per_cpu_s']:,.0f} customers per "
            f"CPU-second ({b['cpu_vs_bare']:.3f} of bare)")  # fmt: skip
        split = b.get("split")
        if split:
            out(f"{'':<18}split across {split['processes']} processes: "
                f"{split['customers_per_s']:,.0f} customers/s together, against "
                f"{split['one_process_customers_per_s']:,.0f} for one process "
                f"(x{split['speedup']:.2f})")  # fmt: skip
    bare = report["batch"]["bare"]
    out(f"{'bare loop':<18}{'':>72}{bare['customers_per_s']:>11,.0f}{1:>9.3f}")
    out(f"{'':<18}batch {bare['customers_per_cpu_s']:,.0f} customers per CPU-second")
    cold = report["batch"]["bare_database"]
    ratios = ", ".join(
        f"{name} {report['batch'][name]['vs_bare_database']:.3f}" for name in report["single"]
    )
    out(f"{'bare, database':<18}{'':>72}{cold['customers_per_s']:>11,.0f}")
    out(f"{'':<18}(the states read from the database each chunk; batch vs it: {ratios})")
    out(f"wall times on a machine whose 1-minute load was {report['machine']['load_average_1m']} "
        f"on {report['machine']['cores']} cores; CPU times are less sensitive to sharing")  # fmt: skip
    t = report["targets"]
    out(f"targets: p99 <= {t['p99_ms']} ms, batch >= {t['batch_customers_per_s']:,.0f} customers/s")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--train-customers", type=int, default=5_000,
                        help="customers whose history trains the policies")  # fmt: skip
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small world, for a smoke run")
    parser.add_argument("--json", type=Path, default=Path("data/bench/decisions.json"))
    args = parser.parse_args(argv)
    if args.quick:  # small defaults; sizes given explicitly are kept
        quick = {"customers": 600, "days": 7, "train_customers": 600, "requests": 100, "warmup": 10}
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    report = run(
        customers=args.customers, days=args.days, train_customers=args.train_customers,
        requests=args.requests, warmup=args.warmup, seed=args.seed,
    )  # fmt: skip
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
