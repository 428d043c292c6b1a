"""The closed-loop experiment: its parts on small worlds, then a few days of the whole loop."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from decisioning.actions import ActionSpace
from decisioning.contact_settings import ContactPolicySettings
from decisioning.errors import InvalidInput
from decisioning.policy import DecisionContext
from decisioning.settings import Settings
from experiments.closed_loop import ExperimentConfig, OraclePolicy, TruthBook, run_experiment
from experiments.closed_loop.audit import audit_sends
from experiments.closed_loop.feed import EventFeed, events_since, sim_objective
from experiments.closed_loop.learning import HISTORY_ONLY, restrict_examples
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, Simulator, run_days
from experiments.simulator.world import WorldConfig

HOUR, DAY = 3600.0, 86_400.0


def _context(customer: str, now: float, eligible: list[bool]) -> DecisionContext:
    actions = ActionSpace.build()
    mask = np.zeros(len(actions), dtype=bool)
    mask[: len(eligible)] = eligible
    return DecisionContext(
        customer_id=customer, now=now, actions=actions, customer={}, attributes={},
        action_features=np.zeros((len(actions), 1)), eligible=mask,
    )  # fmt: skip


# -- the oracle ---------------------------------------------------------------------------------


def test_oracle_takes_the_best_eligible_action_and_needs_its_truth() -> None:
    book = TruthBook()
    values = np.zeros((2, len(ActionSpace.build())))
    values[0, 1], values[0, 2] = 5.0, 3.0  # the best action (1) will not be eligible
    values[1, :] = -1.0
    values[1, 0] = -0.5  # doing nothing is the least bad
    book.fill(np.array(["a", "b"]), np.array([100.0, 100.0]), values)
    oracle = OraclePolicy(book)
    dist = oracle.action_distribution(_context("a", 100.0, [True, False, True]))
    assert dist[2] == 1.0 and dist.sum() == 1.0
    assert oracle.action_distribution(_context("b", 100.0, [True] * 31))[0] == 1.0
    with pytest.raises(InvalidInput, match="no ground truth"):
        oracle.action_distribution(_context("a", 101.0, [True]))


# -- the feed between the world and the service -------------------------------------------------


def test_release_during_a_day_writes_the_same_events_as_the_day_at_once() -> None:
    whole, split = Simulator(300, seed=3), Simulator(300, seed=3)
    config = SimulationConfig(customers=300, days=2, seed=3)
    run_days(whole, config)
    run_days(split, config)
    for sim in (whole, split):
        sim.decision_moments(2)
    start = split.day_start(2)
    released = sum(split.release(start + h * HOUR) for h in (6, 12, 18))
    assert released > 0
    split.step(2)
    whole.step(2)
    a, b = whole.event_log.data, split.event_log.data
    assert np.array_equal(a["ts"], b["ts"]) and np.array_equal(a["type"], b["type"])
    with pytest.raises(InvalidInput, match="until"):
        split.release(split.day_start(3) + 2 * DAY)


def test_event_feed_hands_over_each_event_once_with_the_history_ids() -> None:
    sim = Simulator(200, seed=1)
    run_days(sim, SimulationConfig(customers=200, days=1, seed=1))
    feed = EventFeed(sim)
    events = feed.take()
    history = sim.history().events
    assert [e.event_id for e in events] == history["event_id"].tolist()
    assert [e.type.value for e in events] == history["type"].tolist()
    anonymous = [e for e in events if not e.customer_id]
    assert all(e.anonymous_id for e in anonymous)
    assert feed.take() == []
    frame = events_since(sim, 0.0)
    assert len(frame) == len(events)
    assert (frame["customer_id"] == history["customer_id"].astype(object)).all()


def test_the_simulated_objective_is_the_marketers_one() -> None:
    objective = example_objective("premium_upsell")
    target = sim_objective(objective)
    assert (target.name, target.category, target.value) == ("premium_upsell", "premium", 40.0)
    assert target.unsubscribe_penalty == objective.fatigue_penalties.unsubscribe


def test_only_decided_windows_in_the_period_are_examples() -> None:
    objective = example_objective("premium_upsell")
    ts = pd.to_datetime([0.0, 10 * DAY, 10 * DAY, 20 * DAY], unit="s", utc=True)
    contacts = pd.DataFrame(
        {
            "contact_id": ["a", "b", "c", "d"],
            "customer_id": ["c1"] * 4,
            "ts": ts,
            "channel": ["email", "none", "sms", "email"],
            "send_at": ts,
            "objective": ["premium_upsell"] * 4,
        }
    )
    out = restrict_examples(contacts, objective=objective, start=5 * DAY, end=15 * DAY)
    kept = dict(zip(out["contact_id"], out["objective"], strict=True))
    # the old and the young sends stay as history; the young decision is no example
    assert kept == {"a": HISTORY_ONLY, "b": "premium_upsell", "c": "premium_upsell",
                    "d": HISTORY_ONLY}  # fmt: skip


# -- the guardrail audit ------------------------------------------------------------------------


def test_audit_finds_each_kind_of_violation_in_the_raw_log() -> None:
    sim = Simulator(400, seed=2)
    run_days(sim, SimulationConfig(customers=400, days=1, seed=2))
    sim.decision_moments(1)
    pop, start = sim.population, sim.day_start(1)
    paris = sim.world.timezones.index("Europe/Paris")
    quiet = ~np.isin(np.arange(400), sim.contact_log.data["cust"]) & (pop.tz == paris)
    no_sms = np.flatnonzero(~pop.consent[:, 1] & quiet)[:1]
    capped = np.flatnonzero(pop.consent[:, 0] & pop.consent[:, 1] & pop.consent[:, 2] & quiet)[:1]
    # 12:00 and 13:00 in Paris (UTC+1 in March), and 23:30 for the quiet hours
    sends = pd.DataFrame(
        {
            "customer": [no_sms[0], capped[0], capped[0], capped[0]],
            "send_at": [
                start + 11 * HOUR,
                start + 11 * HOUR,
                start + 12 * HOUR,
                start + 22.5 * HOUR,
            ],  # fmt: skip
            "channel": ["sms", "email", "email", "push"],
            "holdout": [False, False, True, False],
        }
    )
    sends["decided_at"] = sends["send_at"]
    sim.apply_decisions(
        1, sends["customer"].to_numpy(), sends["send_at"].to_numpy(),
        [f"{c}@now" for c in sends["channel"]], ["x1", "x2", "x3", "x4"],
        objective="premium_upsell",
    )  # fmt: skip
    found = audit_sends(sim, sends, ContactPolicySettings())
    assert found["consent"] == 1
    assert found["holdout"] == 1
    assert found["contact_cap"] == 2  # the 13:00 and 23:30 sends follow another within 24h
    assert found["quiet_hours"] == 1
    assert found["channel_cap"] == 0
    assert audit_sends(sim, sends.iloc[:0], ContactPolicySettings()) == dict.fromkeys(found, 0)


def test_audit_sees_tickets_and_the_paid_waterfall() -> None:
    sim = Simulator(2000, seed=4)
    run_days(sim, SimulationConfig(customers=2000, days=3, seed=4))
    at = sim.day_start(3) + 1.0
    state = sim.state
    open_now = np.flatnonzero((state.ticket_open_at < at) & (state.ticket_close_at > at))
    never = np.setdiff1d(np.arange(2000), sim.contact_log.data["cust"])
    assert len(open_now) and len(never)
    sends = pd.DataFrame(
        {
            "customer": [open_now[0], never[0]],
            "send_at": [at, at],
            "decided_at": [at, at],
            "channel": ["paid_social", "paid_social"],
            "holdout": [False, False],
        }
    )
    found = audit_sends(sim, sends, ContactPolicySettings())
    assert found["support_ticket"] == 1
    assert found["waterfall"] >= 1  # the customer never contacted gets paid media first


def test_config_refuses_ticks_that_miss_the_send_hours() -> None:
    with pytest.raises(InvalidInput, match="tick_minutes"):
        ExperimentConfig(tick_minutes=45)
    with pytest.raises(InvalidInput, match="oracle"):
        ExperimentConfig(arms=("learned", "random"))


# -- a few days of the whole loop ---------------------------------------------------------------

#: a world with a clear signal, so that 2,000 customers and a week of examples are enough to
#: learn whom to contact (in the default world the learners need far more data): premium is
#: rarely bought without a contact, 15% of the customers are strongly persuadable and
#: recognisable by their activity, channel tastes follow the customer's segment, the send time
#: matters little, and a message to anyone else is four times likelier to make them unsubscribe
EASY_WORLD = WorldConfig(
    purchase_rates=(0.05, 0.001, 0.015),
    persuadable_share=0.15,
    persuadable_median=0.3,
    persuadable_activity_link=2.0,
    affinity_noise_sd=0.5,
    hour_response_floor=0.8,
    segment_weekend_log=(0.0, 0.0, 0.0, 0.0),
    weekend_log_sd=0.0,
    unsubscribe_base=tuple(4 * p for p in WorldConfig().unsubscribe_base),
)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    out = tmp_path_factory.mktemp("closed_loop")
    settings = Settings(data_dir=out / "data", database_url=None, mlflow_tracking_uri=None)
    return run_experiment(
        settings, days=3, customers=2000, seed=0, out_dir=out, console=None,
        warmup_days=14, world=EASY_WORLD,
    )  # fmt: skip


@pytest.mark.slow
def test_learned_arm_beats_doing_nothing_and_never_does_worse_than_its_fallback(loop) -> None:
    """Until a night's candidate clears the gate the learned arm is served by the rule-based
    fallback, decision for decision; once one does, it must beat random."""
    value = {arm: s.incremental_value for arm, s in loop.summaries.items()}
    assert value["learned"] > value["do_nothing"] == 0.0
    promoted = [n for n in loop.nights if n.promoted]
    for night in loop.nights:
        assert night.reason  # the gate says why, promoted or not
    if promoted:
        assert value["learned"] > value["random"]
    else:
        assert value["learned"] == pytest.approx(value["waterfall"])
    assert value["oracle"] == max(value.values())
    assert loop.summaries["oracle"].regret == 0.0
    assert all(s.regret > 0 for arm, s in loop.summaries.items() if arm != "oracle")
    assert loop.daily.groupby("arm")["regret"].last()["learned"] == pytest.approx(
        loop.summaries["learned"].regret
    )


@pytest.mark.slow
def test_no_arm_breaks_a_guardrail_and_holdouts_are_left_alone(loop) -> None:
    for summary in loop.summaries.values():
        assert summary.violations == 0, (summary.arm, summary.violations_by_rule)
    for report in loop.reports.values():
        assert report.holdout.decisions > 0
        assert report.holdout.contacts == 0


@pytest.mark.slow
def test_rewards_and_progress_come_from_the_decision_log(loop) -> None:
    learned = loop.reports["learned"]
    assert learned.treated.rewarded > 0 and learned.holdout.rewarded > 0
    assert loop.summaries["do_nothing"].contacts == 0
    assert loop.summaries["do_nothing"].spend == 0.0
    assert loop.summaries["random"].contacts > loop.summaries["oracle"].contacts
    assert all(s.status for s in loop.summaries.values())
    assert len(loop.nights) == 1 + 2  # the first policy, then every night but the last


@pytest.mark.slow
def test_report_files_and_mlflow_run(loop) -> None:
    folder: Path = loop.report_dir
    for name in ("index.html", "cumulative_value.png", "regret.png", "lift.png",
                 "channel_mix.png", "contact_pressure.png", "arms.csv"):  # fmt: skip
        assert (folder / name).stat().st_size > 0, name
    page = (folder / "index.html").read_text()
    assert "Progress towards the objective" in page and "regret.png" in page
    assert loop.mlflow_run_id
    table = pd.read_csv(folder / "arms.csv")
    assert list(table["arm"]) == list(loop.summaries)
