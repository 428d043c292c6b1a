"""The benchmark suite (``make bench``): every benchmark, one summary table.

Each benchmark runs as its own process (``python -m experiments.bench_<name> ... --json``),
so one's memory and threads do not bias the next; the key figures of their JSON reports are
gathered into ``data/bench/summary.json`` and a Markdown table ``data/bench/summary.md`` that
names the machine. The machine may be shared: compare ratios measured within one benchmark
run (a figure against its baseline) rather than absolute times across runs.

    python -m experiments.bench            # the sizes the targets are stated for
    python -m experiments.bench --quick    # small sizes, a smoke run of a few minutes
    python -m experiments.bench --only decisions,http
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUT = Path("data/bench")


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model, Python version and load: what a figure was measured on."""
    cpu = platform.processor() or platform.machine()
    memory_gb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "python_loop_ms": calibration_ms(),
        "cores": cores,
        "memory_gb": memory_gb,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def calibration_ms() -> float:
    """Best of three runs of a fixed pure-Python loop, in ms: how fast one core is right now.

    On a shared machine it rises with the load; figures measured in runs whose calibration
    differs much are not comparable.
    """
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - start)
    return round(best * 1e3, 1)


@dataclass(frozen=True)
class Figure:
    """One key figure of a benchmark, with its target when it has one."""

    benchmark: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None


def _get(report: dict[str, Any], *path: str) -> Any:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _simulator(r: dict[str, Any]) -> list[Figure]:
    return [
        Figure("simulator", "customer-days per second", r.get("customer_days_per_second"), "/s"),
        Figure("simulator", "seconds for 100k customers x 30 days",
               r.get("seconds_for_100k_x_30d"), "s"),
    ]  # fmt: skip


def _ingest(r: dict[str, Any]) -> list[Figure]:
    out = []
    for row in r.get("results", []):
        if row.get("database") == "sqlite" and "baseline" not in str(row.get("mode")):
            mode = str(row.get("mode"))
            out.append(Figure("ingest", f"{mode}: events/s", row.get("events_per_s"), "/s"))
            if row.get("vs_baseline") is not None:
                out.append(Figure("ingest", f"{mode}: x raw sqlite", row["vs_baseline"], "ratio"))
    return out


def _ope(r: dict[str, Any]) -> list[Figure]:
    rows = {row["estimator"]: row for row in r.get("results", [])}
    n = r.get("n", 0)
    return [
        Figure("ope", f"{name} on {n:,} decisions (best)", row.get("best_s"), "s")
        for name, row in rows.items()
        if name in ("dr", "all four (evaluate_policies)")
    ]


def _train(r: dict[str, Any]) -> list[Figure]:
    total, n = r.get("total_s"), r.get("decisions", 0)
    scaled = r.get("total_s_per_million")
    out = [Figure("train", f"end-to-end on {n:,} decisions", total, "s")]
    out.append(Figure("train", "end-to-end per 1M decisions", scaled, "s", "<= 300 s",
                      None if scaled is None else scaled <= 300))  # fmt: skip
    out.append(Figure("train", "CPU time per 1M decisions", r.get("cpu_s_per_million"), "s"))
    for stage, seconds in (r.get("stages_s") or {}).items():
        out.append(Figure("train", f"stage: {stage}", seconds, "s"))
    return out


def _decisions(r: dict[str, Any]) -> list[Figure]:
    out = []
    for name, s in (r.get("single") or {}).items():
        p99 = s.get("p99_ms")
        out += [
            Figure("decisions", f"{name}: p50", s.get("p50_ms"), "ms"),
            Figure("decisions", f"{name}: p99", p99, "ms", "<= 1 ms",
                   None if p99 is None else p99 <= 1.0),
            Figure("decisions", f"{name}: CPU time p99", s.get("cpu_p99_ms"), "ms"),
            Figure("decisions", f"{name}: p99 without the policy",
                   s.get("without_policy_p99_ms"), "ms"),
            Figure("decisions", f"{name}: policy share of time", s.get("policy_share"), "ratio"),
        ]  # fmt: skip
        rate = _get(r, "batch", name, "customers_per_s")
        out += [
            Figure("decisions", f"{name}: batch", rate, "customers/s", ">= 20,000/s",
                   None if rate is None else rate >= 20_000),
            Figure("decisions", f"{name}: batch per CPU-second",
                   _get(r, "batch", name, "customers_per_cpu_s"), "customers/s"),
            Figure("decisions", f"{name}: batch vs bare loop",
                   _get(r, "batch", name, "vs_bare"), "ratio"),
        ]  # fmt: skip
        split = _get(r, "batch", name, "split") or {}
        if split:
            k = split.get("processes")
            out += [
                Figure("decisions", f"{name}: batch split across {k} processes",
                       split.get("customers_per_s"), "customers/s"),
                Figure("decisions", f"{name}: {k} processes vs 1 (same run)",
                       split.get("speedup"), "ratio"),
            ]  # fmt: skip
    out.append(Figure("decisions", "bare loop (states + uniform draw)",
                      _get(r, "batch", "bare", "customers_per_s"), "customers/s"))  # fmt: skip
    return out


def _http(r: dict[str, Any]) -> list[Figure]:
    p99, ratio = _get(r, "service", "fixed", "p99_ms"), r.get("max_throughput_ratio")
    unanswered = _get(r, "service", "fixed", "unanswered") or 0
    met_p99 = (p99 <= 15.0) if p99 is not None else (False if unanswered else None)
    batches = []
    for name, b in (r.get("batches") or {}).items():
        what = "segment" if name == "segment" else "list"
        batches += [
            Figure("http", f"batch over HTTP ({what})", _get(b, "http", "per_s"), "customers/s",
                   ">= 20,000/s", None if b.get("http") is None else b["http"]["per_s"] >= 20_000),
            Figure("http", f"batch over HTTP vs in process ({what})", b.get("ratio"), "ratio"),
        ]  # fmt: skip
    return [
        Figure("http", f"service p50 at {r.get('rate')} req/s",
               _get(r, "service", "fixed", "p50_ms"), "ms"),
        Figure("http", f"service p99 at {r.get('rate')} req/s", p99, "ms", "<= 15 ms", met_p99),
        Figure("http", f"service requests unanswered at {r.get('rate')} req/s", unanswered, ""),
        Figure("http", f"service p99 in its first {r.get('warmup_seconds')} s after start",
               _get(r, "service", "warmup", "p99_ms"), "ms"),
        Figure("http", "service max throughput", _get(r, "service", "max", "rps"), "req/s"),
        Figure("http", "bare FastAPI max throughput", _get(r, "bare", "max", "rps"), "req/s"),
        Figure("http", "service / bare throughput", ratio, "ratio", ">= 0.5",
               None if ratio is None else ratio >= 0.5),
        *batches,
    ]  # fmt: skip


def _quality(r: dict[str, Any]) -> list[Figure]:
    out = []
    for logging, run in (r.get("runs") or {}).items():
        capture = run.get("capture") or {}
        for name, share in capture.items():
            target, met = "", None
            if name == r.get("learned_policy") and logging == "uniform":
                target, met = (
                    ">= 60%, beats every baseline",
                    share >= 0.6
                    and all(share > v for k, v in capture.items() if k not in (name, "vw_bandit")),
                )
            elif name == r.get("learned_policy") and logging == "legacy":
                target = "beats the waterfall"
                met = share > capture.get("waterfall", float("inf"))
            out.append(Figure("quality", f"{logging} history: {name} share of oracle lift",
                              share, "ratio", target, met))  # fmt: skip
    return out


@dataclass(frozen=True)
class Benchmark:
    """A benchmark module, its arguments at full and quick size, and its key figures."""

    name: str
    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    figures: Callable[[dict[str, Any]], list[Figure]]


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("simulator", "experiments.bench_simulator", ("--customers", "100000", "--days", "30"),
              ("--customers", "2000", "--days", "7"), _simulator),
    Benchmark("ingest", "experiments.bench_ingest", (),
              ("--events", "5000", "--customers", "500", "--contacts", "1000"), _ingest),
    Benchmark("ope", "experiments.bench_ope", ("--n", "1000000"),
              ("--n", "20000", "--repeats", "1"), _ope),
    Benchmark("train", "experiments.bench_train", ("--decisions", "1000000"),
              ("--decisions", "20000"), _train),
    Benchmark("decisions", "experiments.bench_decisions", (), ("--quick",), _decisions),
    Benchmark("http", "experiments.bench_http", (), ("--quick",), _http),
    Benchmark("quality", "experiments.bench_quality", (), ("--quick",), _quality),
)  # fmt: skip


def run_one(bench: Benchmark, *, quick: bool, out: Path, timeout: float) -> dict[str, Any]:
    """Run one benchmark in its own process; its report, or why there is none."""
    spec = importlib.util.find_spec(bench.module)
    if spec is None or spec.origin is None:
        return {"status": "missing", "error": f"{bench.module} is not installed"}
    path = out / f"{bench.name}.json"
    path.unlink(missing_ok=True)
    sizes = list(bench.quick if quick else bench.full)
    if "--quick" in sizes and "--quick" not in Path(spec.origin).read_text():
        sizes.remove("--quick")  # a benchmark without a quick mode runs at its defaults
    args = [sys.executable, "-m", bench.module, *sizes]
    print(f"\n=== {bench.name}: {' '.join(args[1:])}", flush=True)
    start = time.perf_counter()
    try:
        done = subprocess.run([*args, "--json", str(path)], timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"no result within {timeout:.0f} s"}
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0 or not path.exists():
        return {"status": "failed", "error": f"exit code {done.returncode}", "seconds": seconds}
    return {"status": "ok", "seconds": seconds, "report": json.loads(path.read_text())}


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table with the machine it was measured on."""
    m = summary["machine"]
    lines = [
        f"Measured {summary['finished'][:16].replace('T', ' ')} UTC"
        f"{' (quick sizes)' if summary['quick'] else ''} on {m['cores']} cores, "
        f"{m['memory_gb']} GB, {m['cpu']}, Python {m['python']} (1-minute load "
        f"{m['load_average_1m']} at the start, a fixed Python loop took {m['python_loop_ms']} ms: "
        "the machine may be shared, so compare ratios measured in the same run).",
        "",
        "| benchmark | figure | value | unit | target | met |",
        "|---|---|---:|---|---|---|",
    ]
    for f in summary["figures"]:
        met = "" if f["met"] is None else ("yes" if f["met"] else "**no**")
        lines.append(
            f"| {f['benchmark']} | {f['name']} | {_fmt(f['value'])} | {f['unit']} "
            f"| {f['target']} | {met} |"
        )
    for name, run in summary["runs"].items():
        if run["status"] != "ok":
            lines.append(f"| {name} | not measured: {run['status']} | | | | |")
    reused = [name for name, run in summary["runs"].items() if run.get("reused")]
    if reused:
        lines += ["", f"Figures of {', '.join(reused)} come from earlier runs' reports."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--train-decisions", type=int, help="size of the training benchmark")
    parser.add_argument("--reuse", action="store_true",
                        help="summarise the reports already in --out of the benchmarks not run")  # fmt: skip
    args = parser.parse_args(argv)
    wanted = {n for n in args.only.split(",") if n}
    unknown = wanted - {b.name for b in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; known: {[b.name for b in BENCHMARKS]}")
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    runs: dict[str, Any] = {}
    figures: list[Figure] = []
    for bench in BENCHMARKS:
        if args.train_decisions and bench.name == "train":
            bench = replace(bench, full=("--decisions", str(args.train_decisions)))
        if wanted and bench.name not in wanted:
            kept = args.out / f"{bench.name}.json"
            if args.reuse and kept.exists():
                runs[bench.name] = {"status": "ok", "reused": str(kept)}
                figures += bench.figures(json.loads(kept.read_text()))
            continue
        result = run_one(bench, quick=args.quick, out=args.out, timeout=args.timeout)
        runs[bench.name] = {k: v for k, v in result.items() if k != "report"}
        if result["status"] == "ok":
            figures += bench.figures(result["report"])
    summary = {
        "quick": args.quick,
        "finished": datetime.now(UTC).isoformat(),
        "machine": machine,
        "runs": runs,
        "figures": [f.__dict__ for f in figures],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = markdown(summary)
    (args.out / "summary.md").write_text(table)
    print("\n" + table)
    print(f"wrote {args.out / 'summary.json'} and {args.out / 'summary.md'}")
    return summary


if __name__ == "__main__":
    main()
