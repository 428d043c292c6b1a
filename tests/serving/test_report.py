"""The objective report: lift against the holdout, its interval, progress to the target."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from decisioning.actions import DO_NOTHING, Action
from decisioning.decision import Decision
from decisioning.objectives import Objective, ObjectiveSpec
from decisioning.store import ChannelSpend, LoggedDecision
from serving.report import (
    BEHIND,
    NOT_ENOUGH,
    ON_TRACK,
    REACHED,
    build_report,
    rate_ratio,
)
from tests.serving.conftest import T0, Api, headers

EMAIL = Action.from_key("email@today_evening")


def objective(kind: str = "increase", target: float = 0.1) -> Objective:
    return ObjectiveSpec(
        name="Upsell",
        kind=kind,  # type: ignore[arg-type]
        outcome={"event_type": "purchase"},  # type: ignore[arg-type]
        value_per_conversion=10.0,
        channel_costs={"email": 0.5},  # type: ignore[dict-item]
        target_lift=target,
    ).to_objective()


def logged(i: int, *, holdout: bool, converted: bool | None, obj: Objective) -> LoggedDecision:
    action = DO_NOTHING if holdout else EMAIL
    cost = obj.cost_of(action.channel)
    reward = None if converted is None else (10.0 if converted else 0.0) - cost
    decision = Decision(
        decision_id=f"d{i}",
        customer_id=f"c{i}",
        decided_at=T0 + timedelta(minutes=i),
        objective_id=obj.id,
        objective_version=obj.version,
        action=action,
        send_at=None,
        propensity=1.0,
        model_version="test",
        actions=("none", action.key),
        distribution=(0.0, 1.0) if not holdout else (1.0, 0.0),
        eligible=(True, True),
        holdout=holdout,
    )
    return LoggedDecision(decision, "suppressed", T0, reward=reward)


def arm(start: int, n: int, conversions: int, *, holdout: bool, obj: Objective) -> list:
    return [
        logged(start + i, holdout=holdout, converted=i < conversions, obj=obj) for i in range(n)
    ]


def test_lift_and_interval_on_a_seeded_log() -> None:
    obj = objective()
    log = arm(0, 200, 60, holdout=False, obj=obj) + arm(1000, 100, 20, holdout=True, obj=obj)
    log.append(logged(5000, holdout=False, converted=None, obj=obj))  # no outcome yet
    report = build_report(
        obj,
        log,
        channel_spend=[ChannelSpend("email", 150, 75.0)],
        spend_by_period={"2024-05": 80.0},
    )
    assert (report.treated.decisions, report.holdout.decisions, report.decisions) == (201, 100, 301)
    assert (report.treated.rewarded, report.treated.conversions) == (200, 60)
    assert (report.holdout.rewarded, report.holdout.conversions) == (100, 20)
    assert report.treated.contacts == 201 and report.holdout.contacts == 0
    assert report.decisions_by_action == {"email@today_evening": 201, "none": 100}
    assert report.contacts_by_channel == {"email": 150} and report.spend == 80.0
    # relative lift 0.3 / 0.2 - 1, delta-method interval on the log ratio
    assert report.lift is not None
    assert report.lift.value == pytest.approx(0.5)
    se = math.sqrt(0.7 / 60 + 0.8 / 20)
    assert report.lift.ci_low == pytest.approx(1.5 * math.exp(-1.959964 * se) - 1, rel=1e-5)
    assert report.lift.ci_high == pytest.approx(1.5 * math.exp(1.959964 * se) - 1, rel=1e-5)
    assert report.status == ON_TRACK  # above target, interval still includes it
    rewards_t = np.array([9.5] * 60 + [-0.5] * 140)
    rewards_h = np.array([10.0] * 20 + [0.0] * 80)
    assert report.reward_difference is not None
    assert report.reward_difference.value == pytest.approx(rewards_t.mean() - rewards_h.mean())
    se_r = math.sqrt(rewards_t.var(ddof=1) / 200 + rewards_h.var(ddof=1) / 100)
    assert report.reward_difference.ci_high - report.reward_difference.value == pytest.approx(
        1.959964 * se_r, rel=1e-5
    )


def test_progress_verdicts() -> None:
    obj = objective(target=0.1)
    big = arm(0, 4000, 1200, holdout=False, obj=obj) + arm(10000, 2000, 400, holdout=True, obj=obj)
    assert build_report(obj, big).status == REACHED
    flat = arm(0, 400, 80, holdout=False, obj=obj) + arm(10000, 200, 40, holdout=True, obj=obj)
    assert build_report(obj, flat).status == BEHIND
    small = arm(0, 20, 10, holdout=False, obj=obj) + arm(10000, 10, 1, holdout=True, obj=obj)
    verdict = build_report(obj, small)
    assert verdict.status == NOT_ENOUGH and "at least 30" in verdict.status_reason
    none_held = arm(0, 100, 30, holdout=False, obj=obj) + arm(1000, 50, 0, holdout=True, obj=obj)
    assert build_report(obj, none_held).lift is None
    assert build_report(obj, none_held).status == NOT_ENOUGH


def test_reduce_objective_measures_the_outcome_rate_reduction() -> None:
    obj = objective(kind="reduce", target=0.2)
    # a reduce conversion is the outcome avoided: outcome rates 0.3 treated, 0.5 holdout
    log = arm(0, 1000, 700, holdout=False, obj=obj) + arm(5000, 1000, 500, holdout=True, obj=obj)
    report = build_report(obj, log)
    assert report.lift is not None and report.lift.value == pytest.approx(1 - 0.3 / 0.5)
    assert report.lift.ci_low < report.lift.value < report.lift.ci_high
    assert report.status == REACHED


def test_lift_interval_covers_the_truth_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    p_t, p_h, n_t, n_h = 0.12, 0.08, 3000, 1500
    truth = p_t / p_h
    hits = 0
    for _ in range(400):
        ratio = rate_ratio(rng.binomial(n_t, p_t), n_t, rng.binomial(n_h, p_h), n_h)
        assert ratio is not None
        hits += ratio[1] <= truth <= ratio[2]
    assert 0.91 <= hits / 400 <= 0.985


def test_report_endpoint_on_a_logged_objective(client: TestClient, api: Api) -> None:
    api.create("Half", holdout_fraction=0.5, channel_costs={"email": 0.5})
    decisions = [api.decide(f"c{i:03d}", objective="half") for i in range(20)]
    held = [d for d in decisions if d["holdout"]]
    treated = [d for d in decisions if not d["holdout"]]
    orchestrator = headers("orchestrator")
    for d in decisions[:10]:
        client.post(
            f"/v1/decisions/{d['decision_id']}/outcome", json={"reward": 9.5}, headers=orchestrator
        )
    first_sent = next(d for d in treated if d["action"]["key"] != "none")
    client.post(
        "/v1/contacts",
        json={"decision_id": first_sent["decision_id"], "status": "sent"},
        headers=orchestrator,
    )
    response = client.get(
        "/v1/objectives/half/report", params={"min_rewarded": 1}, headers=headers("marketer")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["decisions"] == {"total": 20, "treated": len(treated), "holdout": len(held)}
    assert body["treated"]["rewarded"] + body["holdout"]["rewarded"] == 10
    assert body["treated"]["conversions"] + body["holdout"]["conversions"] == 10
    assert body["contacts_by_channel"] == {first_sent["action"]["channel"]: 1}
    rewarded_held = sum(d["holdout"] for d in decisions[:10])
    assert body["holdout"]["rewarded"] == rewarded_held
    if 0 < rewarded_held < 10:  # every outcome converted: no lift, below the target
        assert body["lift"]["value"] == pytest.approx(0.0)
        assert body["progress"]["status"] == BEHIND
    else:
        assert body["lift"] is None and body["progress"]["status"] == NOT_ENOUGH
    assert body["progress"]["target_lift"] == 0.1
    unknown = client.get("/v1/objectives/nope/report", headers=headers("marketer"))
    assert unknown.status_code == 404
