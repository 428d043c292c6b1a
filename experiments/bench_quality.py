"""Benchmark of policy quality against the simulator's ground truth.

Every candidate policy is trained on ``--days`` of simulated history of ``--customers``
customers, logged once uniformly at random (with propensities) and once by the legacy
rule-based campaign (without), then scored on the decision moments of the following day: the
share of the oracle's incremental net value over doing nothing that its choices capture, and its
net value per decision over doing nothing. Prints a table and writes the figures as JSON.

Targets (the learned policy is ``lightgbm_greedy``): on uniform history it captures at least 60%
of the oracle's lift and beats every baseline (random, do nothing, best single channel, the
rule-based waterfall); on legacy history it still beats the waterfall.

    python -m experiments.bench_quality --customers 50000 --json data/bench/quality.json
    python -m experiments.bench_quality --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

from experiments.quality import QualityResult, measure_quality

LEARNED = "lightgbm_greedy"
BASELINES = ("random", "do_nothing", "best_single_channel", "waterfall")
LOGGINGS = ("uniform", "legacy")
TARGET_CAPTURE = 0.6
QUICK_CUSTOMERS = 4000


def run_logging(args: argparse.Namespace, logging: str) -> dict[str, Any]:
    """Train and score every policy on history logged by ``logging``."""
    start = time.perf_counter()
    result: QualityResult = measure_quality(
        customers=args.customers,
        days=args.days,
        eval_days=args.eval_days,
        seed=args.seed,
        logging=logging,
        objective_name=args.objective,
        with_vw=not args.no_vw,
        cache_dir=args.cache_dir,
    )
    return {
        "capture": result.capture,
        "value_per_decision": result.value_per_decision,
        "contact_share": result.contact_share,
        "oracle_lift_per_decision": result.oracle_lift_per_decision,
        "nothing_best_share": result.nothing_best_share,
        "examples": result.examples,
        "eval_moments": result.eval_moments,
        "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "wall_s": round(time.perf_counter() - start, 1),
    }


def targets(runs: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Whether the learned policy meets each target (only for the loggings that were run)."""
    met: dict[str, bool] = {}
    if "uniform" in runs:
        cap = runs["uniform"]["capture"]
        met[f"uniform: {LEARNED} captures >= {TARGET_CAPTURE:.0%}"] = cap[LEARNED] >= TARGET_CAPTURE
        met[f"uniform: {LEARNED} beats every baseline"] = all(
            cap[LEARNED] > cap[b] for b in BASELINES if b in cap
        )
    if "legacy" in runs:
        cap = runs["legacy"]["capture"]
        met[f"legacy: {LEARNED} beats the waterfall"] = cap[LEARNED] > cap["waterfall"]
    return met


def summary(runs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The key figures: each learned policy's capture and the best baseline's, per logging."""
    out: dict[str, float] = {}
    for logging, r in runs.items():
        cap = r["capture"]
        for name in (LEARNED, "vw_bandit"):
            if name in cap:
                out[f"{logging}: {name} capture"] = round(cap[name], 4)
        best = max((b for b in BASELINES if b in cap), key=cap.__getitem__)
        out[f"{logging}: best baseline ({best}) capture"] = round(cap[best], 4)
        out[f"{logging}: oracle lift per decision"] = round(r["oracle_lift_per_decision"], 4)
    return out


def print_table(report: dict[str, Any]) -> None:
    runs = report["runs"]
    print(
        f"Policy quality: {report['customers']:,} customers, {report['days']} days of history, "
        f"scored on the next {report['eval_days']} day(s) ({report['objective']})"
    )
    header = f"{'policy':<22}"
    for logging in runs:
        header += f"{logging + ' capture':>18}{'value/decision':>16}{'contacts':>10}"
    print(header)
    names = list(dict.fromkeys(n for r in runs.values() for n in r["capture"]))
    for name in names:
        line = f"{name:<22}"
        for r in runs.values():
            if name in r["capture"]:
                line += f"{r['capture'][name]:>18.1%}{r['value_per_decision'][name]:>16.4f}"
                line += f"{r['contact_share'][name]:>10.1%}"
            else:
                line += f"{'':>44}"
        print(line)
    for logging, r in runs.items():
        print(
            f"{logging}: {r['examples']:,} training examples, {r['eval_moments']:,} moments scored, "
            f"oracle lift {r['oracle_lift_per_decision']:.4f} per decision, doing nothing best at "
            f"{r['nothing_best_share']:.1%}; seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items())
        )
    for name, ok in report["targets"].items():
        print(f"{'MET ' if ok else 'MISSED'} {name}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30, help="days of history to train on")
    parser.add_argument("--eval-days", type=int, default=1, help="days scored after them")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objective", default="premium_upsell")
    parser.add_argument("--logging", default=",".join(LOGGINGS), help="comma-separated")
    parser.add_argument("--no-vw", action="store_true", help="leave the VW bandit out")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path("data/cache"),
        help="where simulated training and evaluation sets are kept between runs",
    )
    parser.add_argument("--no-cache", action="store_true", help="build everything afresh")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_CUSTOMERS:,} customers")
    parser.add_argument("--json", type=Path, default=Path("data/bench/quality.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.customers = QUICK_CUSTOMERS
    if args.no_cache:
        args.cache_dir = None
    loggings = [x.strip() for x in args.logging.split(",") if x.strip()]
    unknown = sorted(set(loggings) - set(LOGGINGS))
    if unknown:
        parser.error(f"--logging: unknown {unknown}; expected some of {', '.join(LOGGINGS)}")
    runs = {logging: run_logging(args, logging) for logging in loggings}
    report: dict[str, Any] = {
        "customers": args.customers,
        "days": args.days,
        "eval_days": args.eval_days,
        "seed": args.seed,
        "objective": args.objective,
        "learned_policy": LEARNED,
        "python": platform.python_version(),
        "runs": runs,
        "targets": targets(runs),
        "summary": summary(runs),
    }
    print_table(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
