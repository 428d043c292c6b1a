"""The objective preview: off-policy figures, reachability and the holdout's power plan."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

import training.preview as preview_module
from decisioning.channels import Channel
from decisioning.settings import Settings
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, simulate
from models.baselines import WaterfallPolicy
from training.preview import Preview, power_plan, preview_objective

TODAY = date(2026, 1, 1)


@pytest.fixture(scope="module")
def history():
    return simulate(SimulationConfig(customers=700, days=14, seed=3))


@pytest.fixture(scope="module")
def upsell(history, tmp_path_factory) -> Preview:
    settings = Settings(data_dir=tmp_path_factory.mktemp("preview"))
    return preview_objective(
        example_objective("premium_upsell"),
        customers=history.customers,
        contacts=history.contacts,
        events=history.events,
        settings=settings,
        today=TODAY,
        n_bootstrap=50,
    )


def _run(history, objective, tmp_path: Path) -> Preview:
    return preview_objective(
        objective,
        customers=history.customers,
        contacts=history.contacts,
        events=history.events,
        settings=Settings(data_dir=tmp_path),
        today=TODAY,
        n_bootstrap=50,
    )


def test_preview_gives_every_figure_with_intervals(upsell: Preview) -> None:
    assert upsell.expected == "lightgbm_greedy"
    assert [p.policy for p in upsell.policies] == ["lightgbm_greedy", "waterfall"]
    assert upsell.source == "its own logged decisions"
    assert 0 < upsell.evaluated < upsell.moments
    assert upsell.customers <= 700
    for p in upsell.policies:
        for q in ("conversion", "spend", "contact", "net_value"):
            for e in ("ips", "dr"):
                est = p.estimates[q][e]
                assert est.low <= est.value <= est.high or math.isnan(est.low)
        assert 0 < p.dr("contact").value <= 1.0
        assert p.contacts_per_customer_30d > 0
        assert p.lift.low <= p.lift.high
    # doing nothing never contacts nor spends, whatever the estimator
    assert upsell.nothing["contact"].value == pytest.approx(0.0, abs=1e-9)
    assert upsell.nothing["spend"].value == pytest.approx(0.0, abs=1e-9)
    assert 0 < upsell.reachable_moments <= upsell.reachable_customers <= 1


def test_preview_is_plain_json_and_readable(upsell: Preview) -> None:
    data = json.loads(json.dumps(upsell.to_dict()))
    assert data["objective_id"] == "premium_upsell"
    assert set(data["power"]) >= {"holdout_decisions", "days_needed", "days_left"}
    assert data["power"]["days_left"] == (date(2027, 6, 30) - TODAY).days
    assert data["verdict"] in ("likely", "uncertain", "unlikely", "not measurable")
    text = upsell.describe()
    assert "premium_upsell" in text and "Verdict: target" in text
    assert "per customer per 30 days" in text


def test_spend_follows_the_objective_costs(history, tmp_path: Path) -> None:
    base = example_objective("premium_upsell")
    dear = base.with_changes(channel_costs=dict.fromkeys(base.channels, 2.0))
    cheap = _run(history, base, tmp_path / "a").policy("waterfall")
    costly = _run(history, dear, tmp_path / "b").policy("waterfall")
    # every channel now costs 2 a message, whatever the history paid
    assert costly.dr("spend").value == pytest.approx(2.0 * costly.dr("contact").value, rel=0.05)
    assert cheap.dr("spend").value < 0.5 * costly.dr("spend").value  # paid social costs 0.5


def test_channels_the_objective_forbids_are_never_previewed(history, tmp_path: Path) -> None:
    email_only = example_objective("premium_upsell").with_changes(channels=[Channel.EMAIL])
    preview = _run(history, email_only, tmp_path)
    full = _run(history, example_objective("premium_upsell"), tmp_path)
    assert preview.reachable_moments < full.reachable_moments
    # e-mail costs 0.001 a message: any other channel would show in the spend
    for p in preview.policies:
        assert p.dr("spend").value <= 0.001 * p.dr("contact").value + 1e-3


def test_a_registered_champion_is_what_the_preview_expects(
    history, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objective = example_objective("premium_upsell")
    monkeypatch.setattr(
        preview_module, "_champion", lambda *_a: ("premium_upsell/4", WaterfallPolicy())
    )
    preview = _run(history, objective, tmp_path)
    assert preview.expected == "champion"
    champion, rule = preview.policy("champion"), preview.policy("waterfall")
    assert champion.model_version == "premium_upsell/4"
    # the same rule on the objective's own action space gives the same figures
    for q in ("conversion", "spend", "contact", "net_value"):
        assert champion.dr(q).value == pytest.approx(rule.dr(q).value)


def test_reduce_objectives_measure_the_event_they_avoid(history, tmp_path: Path) -> None:
    churn = _run(history, example_objective("churn"), tmp_path)
    assert churn.kind == "reduce"
    assert churn.source == "all logged decisions"
    assert churn.power.target_rate == pytest.approx(churn.power.baseline_rate * 0.9)
    # the baseline rate is of cancellations: the complement of the conversion share
    assert churn.power.baseline_rate == pytest.approx(1 - churn.nothing["conversion"].value)


def test_power_plan_matches_the_textbook_sample_size() -> None:
    # 10% vs 15%, equal groups, alpha 0.05 two-sided, power 0.8: 686 per group (Fleiss)
    plan = power_plan(
        baseline_rate=0.10, target_lift=0.5, kind="increase", holdout_fraction=0.5,
        daily_decisions=100.0, segment_customers=50, window_days=7.0, days_left=30,
    )  # fmt: skip
    assert plan.target_rate == pytest.approx(0.15)
    assert plan.holdout_decisions == 686
    assert plan.treated_decisions == pytest.approx(686)
    assert plan.days_needed == pytest.approx(686 / 50 + 7)
    assert plan.holdout_customers == 25
    assert plan.holdout_customer_days == pytest.approx(686 / 2.0)
    assert plan.measurable_in_time is True


def test_a_smaller_holdout_needs_more_days() -> None:
    common = {"baseline_rate": 0.02, "target_lift": 0.1, "kind": "increase",
              "daily_decisions": 1000.0, "segment_customers": 500, "window_days": 7.0}  # fmt: skip
    wide = power_plan(holdout_fraction=0.5, days_left=None, **common)
    narrow = power_plan(holdout_fraction=0.1, days_left=100, **common)
    assert narrow.holdout_decisions < wide.holdout_decisions  # the treated group grows
    assert narrow.days_needed > wide.days_needed
    assert wide.measurable_in_time is None
    assert narrow.measurable_in_time is (narrow.days_needed <= 100)


def test_without_holdout_or_baseline_nothing_is_measurable() -> None:
    common = {"target_lift": 0.1, "kind": "increase", "daily_decisions": 10.0,
              "segment_customers": 5, "window_days": 7.0, "days_left": 10}  # fmt: skip
    for plan in (
        power_plan(baseline_rate=0.05, holdout_fraction=0.0, **common),
        power_plan(baseline_rate=0.0, holdout_fraction=0.1, **common),
    ):
        assert math.isinf(plan.days_needed)
        assert plan.measurable_in_time is False
    assert np.isinf(power_plan(baseline_rate=0.0, holdout_fraction=0.1, **common).holdout_decisions)
