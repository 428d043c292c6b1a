"""Policy quality on a small simulated world, against its ground truth (no timing checks)."""

from __future__ import annotations

import pytest

from experiments import bench
from experiments.quality import QualityResult, measure_quality


@pytest.fixture(scope="module", params=[0, 1])
def small_world(request: pytest.FixtureRequest) -> QualityResult:
    # 2,000 customers, 3 weeks of uniformly-random-logged history: about 20,000 examples.
    return measure_quality(customers=2000, days=21, seed=request.param, with_vw=False)


def test_learned_policy_beats_random_and_doing_nothing(small_world: QualityResult) -> None:
    capture = small_world.capture
    assert capture["do_nothing"] == 0.0
    assert capture["lightgbm_greedy"] > capture["random"] + 0.1
    assert capture["lightgbm_greedy"] > 0.1
    assert small_world.value_per_decision["lightgbm_greedy"] > 0.0


def test_no_policy_beats_the_oracle(small_world: QualityResult) -> None:
    assert small_world.oracle_lift_per_decision > 0.0
    for name, share in small_world.capture.items():
        assert share <= 1.0 + 1e-9, name
    # Doing nothing is the right answer at most moments.
    assert small_world.nothing_best_share > 0.8
    assert small_world.contact_share["do_nothing"] == 0.0


def test_benchmark_summary_judges_the_quality_targets() -> None:
    report = {
        "learned_policy": "lightgbm_greedy",
        "runs": {
            "uniform": {"capture": {"lightgbm_greedy": 0.62, "random": -0.1, "waterfall": 0.7}},
            "legacy": {"capture": {"lightgbm_greedy": 0.3, "waterfall": 0.2}},
        },
    }
    figures = {(f.name, f.met) for f in bench._quality(report)}
    # 62% of the oracle's lift, but the waterfall does better: the uniform target is missed.
    assert ("uniform history: lightgbm_greedy share of oracle lift", False) in figures
    assert ("legacy history: lightgbm_greedy share of oracle lift", True) in figures
    assert ("uniform history: random share of oracle lift", None) in figures


def test_an_objective_with_fewer_channels_is_scored_on_its_own_actions() -> None:
    # The churn objective uses four channels (25 actions), not all five.
    result = measure_quality(customers=1000, days=14, seed=0, objective_name="churn", with_vw=False)
    assert result.eval_moments > 0
    assert all(share <= 1.0 + 1e-9 for share in result.capture.values())
    assert result.capture["do_nothing"] == 0.0
