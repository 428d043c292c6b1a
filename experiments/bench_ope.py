"""Benchmark of the off-policy estimators at production scale.

Times IPS, SNIPS, DM and DR, each with its bootstrap interval, on synthetic logged decisions
shaped like the service's (31 actions, doing nothing logged ~90% of the time), then all four
at once through ``evaluate_policies``. Prints a table and writes the figures as JSON.

    python -m experiments.bench_ope --n 1000000 --json data/bench/ope.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.ope import Estimate, dm, dr, evaluate_policies, ips, snips


def synthetic_log(n: int, n_actions: int, seed: int) -> dict[str, np.ndarray]:
    """Logged decisions from a do-nothing-heavy logging policy, and a target policy to evaluate."""
    rng = np.random.default_rng(seed)
    # Logging: 90% do nothing, the rest spread unevenly over the contact actions.
    logging = rng.dirichlet(np.ones(n_actions - 1), n) * 0.1
    logging = np.column_stack([np.full(n, 0.9), logging])
    action = (logging.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    action = np.minimum(action, n_actions - 1)  # rows whose cumsum rounds just below 1
    # Target: do nothing 85% of the time, a softmax over the contact actions otherwise.
    scores = rng.normal(size=(n, n_actions - 1))
    target = np.exp(scores - scores.max(axis=1, keepdims=True))
    target *= 0.15 / target.sum(axis=1, keepdims=True)
    target = np.column_stack([np.full(n, 0.85), target])
    q = rng.uniform(0.0, 0.1, size=(n, n_actions))
    reward = (rng.random(n) < q[np.arange(n), action]).astype(float)
    return {
        "reward": reward,
        "action": action,
        "pscore": logging[np.arange(n), action],
        "action_dist": target,
        "estimated_rewards": q,
    }


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Best and median wall time of ``repeats`` calls, with the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times)), result


def run(n: int, n_actions: int, n_bootstrap: int, repeats: int, seed: int) -> dict[str, Any]:
    """Time every estimator on one synthetic log; returns the figures."""
    start = time.perf_counter()
    log = synthetic_log(n, n_actions, seed)
    generated = time.perf_counter() - start
    base: dict[str, Any] = {k: log[k] for k in ("reward", "action", "pscore", "action_dist")}
    common: dict[str, Any] = {"n_bootstrap": n_bootstrap, "random_state": seed}
    estimators: dict[str, Callable[[], Estimate]] = {
        "ips": lambda: ips(**base, **common),
        "snips": lambda: snips(**base, **common),
        "dm": lambda: dm(
            action_dist=log["action_dist"], estimated_rewards=log["estimated_rewards"], **common
        ),
        "dr": lambda: dr(**base, estimated_rewards=log["estimated_rewards"], **common),
    }
    rows = []
    for name, fn in estimators.items():
        best, median, est = timed(fn, repeats)
        rows.append(
            {
                "estimator": name,
                "best_s": best,
                "median_s": median,
                "value": est.value,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "ess": est.ess,
            }
        )
    best, median, _ = timed(
        lambda: evaluate_policies(
            reward=log["reward"],
            action=log["action"],
            pscore=log["pscore"],
            estimated_rewards=log["estimated_rewards"],
            policies={"target": log["action_dist"]},
            **common,
        ),
        repeats,
    )
    rows.append({"estimator": "all four (evaluate_policies)", "best_s": best, "median_s": median})
    return {
        "n": n,
        "n_actions": n_actions,
        "n_bootstrap": n_bootstrap,
        "repeats": repeats,
        "seed": seed,
        "generate_s": generated,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": rows,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"OPE benchmark: {report['n']:,} decisions x {report['n_actions']} actions, "
        f"{report['n_bootstrap']} bootstrap draws, best of {report['repeats']}"
    )
    print(f"{'estimator':<30}{'best s':>9}{'median s':>10}{'value':>10}{'95% CI':>22}{'ESS':>12}")
    for r in report["results"]:
        line = f"{r['estimator']:<30}{r['best_s']:>9.2f}{r['median_s']:>10.2f}"
        if "value" in r:
            ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            line += f"{r['value']:>10.4f}{ci:>22}{r['ess']:>12,.0f}"
        print(line)
    print(f"peak RSS {report['peak_rss_mb']:.0f} MB; data generation {report['generate_s']:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="logged decisions")
    parser.add_argument("--actions", type=int, default=31, help="actions, do nothing included")
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("data/bench/ope.json"))
    args = parser.parse_args(argv)
    report = run(args.n, args.actions, args.n_bootstrap, args.repeats, args.seed)
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
