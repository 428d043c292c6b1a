"""Smoke runs of the benchmark suite and the objective preview on tiny sizes (no timing checks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from decisioning.settings import Settings
from experiments import bench, bench_decisions
from experiments.quality import OBJECTIVES_DIR
from experiments.simulator import SimulationConfig, simulate
from serving.cli_preview import run_preview


@pytest.fixture(scope="module")
def decisions_report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    path = tmp_path_factory.mktemp("bench") / "decisions.json"
    bench_decisions.main(["--quick", "--requests", "30", "--warmup", "5", "--json", str(path)])
    return json.loads(path.read_text())


def test_decision_benchmark_writes_its_figures(decisions_report: dict) -> None:
    r = decisions_report
    assert r["actions"] == 31
    assert set(r["single"]) == {"lightgbm_greedy", "vw_bandit"}
    for figures in r["single"].values():
        assert figures["requests"] == 30
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["policy_p99_ms"] <= figures["p99_ms"]
        assert set(figures["mean_split_ms"]) == {
            "policy", "store_read", "store_write", "guardrails_features_explanation"
        }  # fmt: skip
        assert 0 < figures["policy_share"] < 1
    for name in ("lightgbm_greedy", "vw_bandit"):
        assert r["batch"][name]["customers"] == r["customers"]
        assert r["batch"][name]["customers_per_s"] > 0
        assert r["batch"][name]["vs_bare"] > 0
        split = r["batch"][name]["split"]
        assert split["processes"] == bench_decisions.SPLIT_PROCESSES
        assert split["customers"] == r["customers"] and split["start_s"] > 0
        assert split["customers_per_s"] > 0 and split["one_process_customers_per_s"] > 0
    assert r["batch"]["bare"]["customers"] == r["customers"]
    assert {"cores", "memory_gb", "cpu", "python"} <= set(r["machine"])


def test_summary_names_targets_and_machine(decisions_report: dict) -> None:
    figures = bench.BENCHMARKS[[b.name for b in bench.BENCHMARKS].index("decisions")].figures(
        decisions_report
    )
    p99 = [f for f in figures if f.name == "lightgbm_greedy: p99"][0]
    assert p99.target == "<= 1 ms" and p99.met == (p99.value <= 1.0)
    summary = {
        "quick": True,
        "finished": "2026-01-01T00:00:00+00:00",
        "machine": decisions_report["machine"],
        "runs": {"decisions": {"status": "ok"}, "quality": {"status": "missing"}},
        "figures": [f.__dict__ for f in figures],
    }
    text = bench.markdown(summary)
    assert f"{decisions_report['machine']['cores']} cores" in text
    assert "| decisions | lightgbm_greedy: p99 |" in text
    assert "| quality | not measured: missing |" in text


def test_a_missing_benchmark_is_reported_not_run(tmp_path: Path) -> None:
    absent = bench.Benchmark("absent", "experiments.no_such_bench", (), (), bench._ope)
    assert bench.run_one(absent, quick=True, out=tmp_path, timeout=5)["status"] == "missing"


def test_preview_command_prints_and_returns_previews(tmp_path: Path) -> None:
    simulate(SimulationConfig(customers=500, days=14, seed=5)).write(tmp_path / "history")
    console = Console(record=True, width=160)
    previews = run_preview(
        Settings(data_dir=tmp_path / "data"),
        OBJECTIVES_DIR / "premium_upsell.yaml",
        tmp_path / "history",
        console,
    )
    assert [p.objective_id for p in previews] == ["premium_upsell"]
    data = json.loads(json.dumps(previews[0].to_dict()))
    assert {"policies", "nothing", "power", "reachable_moments", "verdict", "notes"} <= set(data)
    assert {"conversion", "spend", "contact", "net_value"} == set(data["policies"][0]["estimates"])
    printed = console.export_text()
    assert "Preview: premium_upsell" in printed and "lightgbm_greedy" in printed
    assert "Verdict: target" in printed
