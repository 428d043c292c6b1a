"""The simulated world: determinism, the ground truth, fatigue, and the history's integrity."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from decisioning.actions import ALL_SLOTS, ActionSpace, send_at
from decisioning.channels import CONSENT_CHANNELS
from decisioning.errors import InvalidInput
from decisioning.records import EventType
from experiments.simulator import (
    CATEGORIES,
    CHURN,
    PREMIUM_UPSELL,
    SimObjective,
    SimulationConfig,
    Simulator,
    capture_share,
    oracle_actions,
    simulate,
    uniform_choice,
)
from experiments.simulator.clock import LocalClock

ACTIONS = ActionSpace.build()
OBJECTIVES = (PREMIUM_UPSELL, CHURN)


@pytest.fixture(scope="module")
def uniform_history():
    return simulate(SimulationConfig(customers=400, days=12, seed=7, policy="uniform"))


@pytest.fixture(scope="module")
def legacy_history():
    return simulate(SimulationConfig(customers=400, days=12, seed=7, policy="legacy"))


@pytest.fixture(scope="module")
def fresh_world():
    """A world at day 0 with its first moments and the truth for both objectives."""
    sim = Simulator(3000, seed=11)
    idx, ts = sim.decision_moments(0)
    truth = {o.name: sim.ground_truth(idx, ts, ACTIONS, o) for o in OBJECTIVES}
    return sim, idx, ts, sim.eligible(idx, ts, ACTIONS), truth


# -- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(uniform_history):
    again = simulate(SimulationConfig(customers=400, days=12, seed=7, policy="uniform"))
    for name in ("customers", "contacts", "events"):
        pd.testing.assert_frame_equal(getattr(uniform_history, name), getattr(again, name))


def test_different_seed_gives_different_tables(uniform_history):
    other = simulate(SimulationConfig(customers=400, days=12, seed=8, policy="uniform"))
    assert not uniform_history.customers.equals(other.customers)
    assert not uniform_history.events.equals(other.events)
    assert not uniform_history.contacts.equals(other.contacts)


# -- the ground truth ----------------------------------------------------------------------------


@pytest.mark.parametrize("objective", [o.name for o in OBJECTIVES])
def test_oracle_beats_every_fixed_policy(fresh_world, objective):
    sim, idx, ts, eligible, truth = fresh_world
    values = truth[objective]
    rows = np.arange(len(values))
    oracle = values[rows, oracle_actions(values, eligible)]
    rng = np.random.default_rng(0)
    fixed = {
        "always_none": np.zeros(len(values), dtype=np.int64),
        "always_email_now": np.full(len(values), ACTIONS.index("email@now")),
        "always_push_evening": np.full(len(values), ACTIONS.index("push@today_evening")),
        "always_paid_social": np.full(len(values), ACTIONS.index("paid_social@now")),
        "random": uniform_choice(eligible, rng)[0],
    }
    nothing = values[:, 0]
    for name, choice in fixed.items():
        choice = np.where(eligible[rows, choice], choice, 0)  # consent still applies
        chosen = values[rows, choice]
        assert np.all(oracle >= chosen - 1e-12), name
        assert oracle.sum() > chosen.sum(), name
        assert capture_share(chosen, oracle, nothing) < 1.0, name
    assert capture_share(oracle, oracle, nothing) == pytest.approx(1.0)
    assert capture_share(nothing, oracle, nothing) == 0.0
    # unrestricted, the oracle is at least as good as restricted to what consent allows
    assert values.max(axis=1).sum() >= oracle.sum()


@pytest.mark.parametrize("objective", [o.name for o in OBJECTIVES])
def test_doing_nothing_is_best_in_most_moments(fresh_world, objective):
    sim, idx, ts, eligible, truth = fresh_world
    best = oracle_actions(truth[objective], eligible)
    share = float(np.mean(best == 0))
    assert 0.75 <= share <= 0.97
    # those a contact pays off for are mostly the persuadable minority
    assert sim.population.persuadable[idx[best > 0]].mean() > 0.8


def test_doing_nothing_has_no_cost_and_the_truth_nets_costs_out(fresh_world):
    sim, idx, ts, eligible, truth = fresh_world
    values = truth["premium_upsell"]
    # doing nothing is worth the organic conversions only: no cost, no harm
    rate = sim.population.purchase_rate[idx, CATEGORIES.index("premium")]
    assert np.allclose(values[:, 0], 40.0 * (1.0 - np.exp(-7.0 * rate)))
    # a message that cannot be delivered (no consent) only costs its price
    sms_now = ACTIONS.index("sms@now")
    blocked = ~eligible[:, sms_now]
    assert blocked.sum() > 100
    assert np.allclose(values[blocked, sms_now] - values[blocked, 0], -0.05)
    # for the unpersuadable majority, every contact loses its cost and its fatigue harm
    quiet = ~sim.population.persuadable[idx]
    assert np.all(values[quiet, 1:].max(axis=1) < values[quiet, 0] + 0.05)


def test_ground_truth_rejects_moments_in_the_past():
    sim = Simulator(50, seed=1)
    sim.step(0)
    with pytest.raises(InvalidInput, match="ts"):
        sim.ground_truth(np.array([0]), np.array([sim.day_start(0) + 3600]), ACTIONS, "churn")


@pytest.mark.parametrize("objective", [o.name for o in OBJECTIVES])
def test_pressure_lowers_response(objective):
    calm, pressed = Simulator(600, seed=5), Simulator(600, seed=5)
    idx, ts = calm.decision_moments(0)
    idx, first = np.unique(idx, return_index=True)
    ts = ts[first]
    for sim, key in ((calm, "none"), (pressed, "paid_social@now")):  # needs no consent
        for repeat in range(3):
            keys = [key] * len(idx)
            ids = [f"d{repeat}-{i}" for i in idx]
            sim.apply_decisions(0, idx, ts, keys, ids, objective=objective)
    calm.step(0)
    pressed.step(0)
    alive = ~np.isfinite(calm.state.cancel_at[idx]) & ~np.isfinite(pressed.state.cancel_at[idx])
    who = idx[alive]
    at = np.full(len(who), calm.day_start(1) + 6 * 3600.0)
    assert np.all(pressed.state.pressure_at(who, at) > calm.state.pressure_at(who, at))
    email = ACTIONS.index("email@today_evening")
    uplift = {}
    for name, sim in (("calm", calm), ("pressed", pressed)):
        v = sim.ground_truth(who, at, ACTIONS, objective)
        uplift[name] = v[:, email] - v[:, 0]
    same_consent = (
        calm.eligible(who, at, ACTIONS)[:, email] & pressed.eligible(who, at, ACTIONS)[:, email]
    )
    assert same_consent.sum() > 100
    assert np.all(uplift["pressed"][same_consent] < uplift["calm"][same_consent])


# -- the history ---------------------------------------------------------------------------------


def test_tables_follow_the_data_contract(uniform_history):
    h = uniform_history
    assert list(h.customers.columns[:7]) == [
        "customer_id", "signup_at", "timezone",
        *(f"consent_{c.value}" for c in CONSENT_CHANNELS),
    ]  # fmt: skip
    assert {"segment", "plan", "country"} <= set(h.customers.columns)
    assert list(h.contacts.columns) == [
        "contact_id", "customer_id", "ts", "channel", "slot", "send_at", "objective", "cost",
        "propensity", "decision_id", "category",
    ]  # fmt: skip
    assert list(h.events.columns) == [
        "event_id", "customer_id", "ts", "type", "channel", "contact_id", "value", "category",
        "anonymous_id",
    ]  # fmt: skip
    for frame, cols in ((h.customers, ["signup_at"]), (h.contacts, ["ts", "send_at"]),
                        (h.events, ["ts"])):  # fmt: skip
        for col in cols:
            assert str(frame[col].dt.tz) == "UTC"
    assert set(h.events.type) <= {t.value for t in EventType}
    assert set(h.contacts.slot) <= {s.value for s in ALL_SLOTS}
    new = h.customers.signup_at > pd.Timestamp(datetime(2024, 3, 4, tzinfo=UTC) - timedelta(90))
    assert 0.08 < new.mean() < 0.25
    nothing = h.contacts[h.contacts.channel == "none"]
    assert (nothing.send_at == nothing.ts).all() and (nothing.cost == 0).all()


def test_ids_are_unique_and_events_follow_their_contact(uniform_history):
    h = uniform_history
    for frame, col in ((h.customers, "customer_id"), (h.contacts, "contact_id"),
                       (h.contacts, "decision_id"), (h.events, "event_id")):  # fmt: skip
        assert frame[col].is_unique, col
    with_contact = h.events.dropna(subset=["contact_id"])
    assert len(with_contact) > 100
    joined = with_contact.merge(h.contacts[["contact_id", "send_at", "customer_id"]],
                                on="contact_id", suffixes=("", "_contact"))  # fmt: skip
    assert len(joined) == len(with_contact)
    assert (joined.ts > joined.send_at).all()
    assert (joined.customer_id == joined.customer_id_contact).all()
    first = with_contact.groupby(["contact_id", "type"]).ts.min().unstack()
    opened = first.dropna(subset=["open"])
    assert (opened.open > opened.delivered).all()
    clicked = first.dropna(subset=["click"])
    assert (clicked.click > clicked.open).all()


def test_no_events_after_cancel_and_unsubscribes_revoke_consent(uniform_history):
    h = uniform_history
    ev = h.events[h.events.customer_id != ""]
    cancels = ev[ev.type == "cancel"].groupby("customer_id").ts.min()
    assert len(cancels) > 0
    last = ev.groupby("customer_id").ts.max()
    assert (last[cancels.index] == cancels).all()
    assert not (h.contacts.merge(cancels.rename("cancel_at"), left_on="customer_id",
                                 right_index=True).pipe(lambda f: f.ts > f.cancel_at)).any()  # fmt: skip
    unsubs = ev[ev.type == "unsubscribe"][["customer_id", "channel", "ts"]]
    assert len(unsubs) > 0
    delivered = (
        ev[ev.type == "delivered"]
        .merge(h.contacts[["contact_id", "send_at"]], on="contact_id")
        .merge(unsubs, on=["customer_id", "channel"], suffixes=("", "_unsub"))
    )
    assert not (delivered.send_at > delivered.ts_unsub).any()


def test_anonymous_visits_are_identified_later(uniform_history):
    ev = uniform_history.events
    anonymous = ev[ev.customer_id == ""]
    assert len(anonymous) > 0
    assert anonymous.anonymous_id.notna().all() and (anonymous.type == "web_visit").all()
    identify = ev[ev.type == "identify"].set_index("anonymous_id")
    linked = anonymous.join(identify[["customer_id", "ts"]], on="anonymous_id", rsuffix="_id")
    linked = linked.dropna(subset=["ts_id"])
    assert len(linked) > 0.8 * len(anonymous)
    assert (linked.ts_id > linked.ts).all() and (linked.customer_id_id != "").all()


def test_legacy_history_has_no_propensities(legacy_history):
    contacts = legacy_history.contacts
    assert contacts.propensity.isna().all()
    sent = set(contacts.channel.astype(str) + "@" + contacts.slot.astype(str))
    assert {"email@tomorrow_morning", "paid_social@now", "none@now"} <= sent


def test_uniform_propensity_is_one_over_the_allowed_actions(uniform_history):
    h = uniform_history
    contacts = h.contacts.merge(h.customers, on="customer_id", suffixes=("", "_customer"))
    unsubs = h.events[h.events.type == "unsubscribe"]
    allowed_channels = np.ones(len(contacts))  # paid social needs no consent
    for channel in CONSENT_CHANNELS:
        consent = contacts[f"consent_{channel.value}"].to_numpy(copy=True)
        gone = unsubs[unsubs.channel == channel.value].groupby("customer_id").ts.min()
        revoked_at = contacts.customer_id.map(gone.astype("int64"))  # NaN: never unsubscribed
        consent &= ~(revoked_at < contacts.ts.astype("int64")).to_numpy()
        allowed_channels += consent
    n_allowed = 1 + len(ALL_SLOTS) * allowed_channels
    assert np.allclose(contacts.propensity.to_numpy(), 1.0 / n_allowed)
    assert (contacts.channel == "none").mean() < 0.2


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_write_puts_the_three_tables_in_the_folder(uniform_history, tmp_path, fmt):
    paths = uniform_history.write(tmp_path / "out", format=fmt)
    assert sorted(p.name for p in paths.values()) == sorted(
        f"{n}.{fmt}" for n in ("customers", "contacts", "events")
    )
    reader = pd.read_parquet if fmt == "parquet" else pd.read_csv
    events = reader(paths["events"])
    assert len(events) == len(uniform_history.events)
    assert list(events.columns) == list(uniform_history.events.columns)


def test_write_rejects_unknown_format(uniform_history, tmp_path):
    with pytest.raises(InvalidInput, match="format"):
        uniform_history.write(tmp_path, format="xlsx")  # type: ignore[arg-type]


# -- the steppable world ---------------------------------------------------------------------------


def test_days_run_in_order_and_decisions_are_checked():
    sim = Simulator(100, seed=2)
    idx, ts = sim.decision_moments(0)
    with pytest.raises(InvalidInput, match="day 1"):
        sim.decision_moments(1)
    with pytest.raises(InvalidInput, match="action_keys"):
        sim.apply_decisions(0, idx, ts, ["none"] * (len(idx) + 1), ["d"] * len(idx),
                            objective="churn")  # fmt: skip
    with pytest.raises(InvalidInput, match="carrier_pigeon"):
        sim.apply_decisions(0, idx[:1], ts[:1], ["carrier_pigeon@now"], ["d"], objective="churn")
    with pytest.raises(InvalidInput, match="unknown objective"):
        sim.apply_decisions(0, idx[:1], ts[:1], ["none"], ["d"], objective="revenue")
    sim.step(0)
    assert sim.day == 1
    idx1, ts1 = sim.decision_moments(1)
    assert np.all(np.diff(ts1) >= 0) and ts1.min() >= sim.day_start(1)
    hours = sim.clock.local_hour(ts1, sim.population.tz[idx1])
    assert np.all((hours >= 8) & (hours < 21))


def test_decisions_plugged_in_change_only_the_responses():
    """Organic behaviour draws common random numbers: other decisions, same visits."""
    worlds = [Simulator(300, seed=4), Simulator(300, seed=4)]
    for key, sim in zip(("none", "email@now"), worlds, strict=True):
        idx, ts = sim.decision_moments(0)
        sim.apply_decisions(0, idx, ts, [key] * len(idx), [str(i) for i in range(len(idx))],
                            objective="premium_upsell")  # fmt: skip
        sim.step(0)
    a, b = (w.history().events for w in worlds)
    visits = [f[f.type.isin(["app_open", "web_visit"])].reset_index(drop=True) for f in (a, b)]
    pd.testing.assert_frame_equal(visits[0].drop(columns="event_id"),
                                  visits[1].drop(columns="event_id"))  # fmt: skip
    assert (b.type == "delivered").sum() > 0 == (a.type == "delivered").sum()


def test_vectorised_send_times_match_the_domain_send_at():
    zones = ("Europe/Paris", "America/New_York", "Asia/Tokyo", "America/Los_Angeles")
    clock = LocalClock(zones)
    rng = np.random.default_rng(3)
    n = 300
    ts = datetime(2024, 3, 1, tzinfo=UTC).timestamp() + rng.random(n) * 86_400 * 240
    tz = rng.integers(0, len(zones), n)
    slot = rng.integers(0, len(ALL_SLOTS), n)
    send, hour, weekday = clock.send_times(slot, ts, tz)
    for i in range(n):
        expected = send_at(ALL_SLOTS[slot[i]], datetime.fromtimestamp(ts[i], UTC), zones[tz[i]])
        assert send[i] == pytest.approx(expected.timestamp(), abs=1e-3)
        assert int(hour[i]) == expected.astimezone(clock_zone(zones[tz[i]])).hour
        assert weekday[i] == expected.astimezone(clock_zone(zones[tz[i]])).weekday()


def clock_zone(name: str):
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "maximise"}, "kind"),
        ({"category": "socks"}, "purchases"),
        ({"window_days": 0.0}, "window_days"),
        ({"value": -1.0}, "value"),
        ({"complaint_penalty": -1.0}, "complaint_penalty"),
    ],
)
def test_sim_objective_rejects_bad_settings(change, match):
    with pytest.raises(InvalidInput, match=match):
        replace(PREMIUM_UPSELL, **change)


def test_reduce_objective_needs_cancel():
    with pytest.raises(InvalidInput, match="cancel"):
        SimObjective("x", "reduce", EventType.PURCHASE, None, 1.0, 7.0, 0.0, 0.0)


def test_capture_share_checks_shapes_and_handles_nothing_to_gain():
    with pytest.raises(ValueError, match="shape"):
        capture_share(np.zeros(2), np.zeros(3), np.zeros(2))
    assert np.isnan(capture_share(np.zeros(2), np.zeros(2), np.zeros(2)))
    assert capture_share(np.array([1.0, 0.0]), np.array([2.0, 2.0]), np.zeros(2)) == 0.25
