"""Training examples: point-in-time correct, the same features online and offline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from decisioning.errors import LearningError
from decisioning.features import BEHAVIOUR_FEATURES, customer_features
from decisioning.guardrails import ContactPolicy
from decisioning.history import History
from decisioning.store import open_store
from experiments.quality import example_objective
from experiments.simulator import SimulationConfig, simulate
from training.dataset import build_training_set


@pytest.fixture(scope="module")
def history() -> History:
    sim = simulate(SimulationConfig(customers=300, days=12, seed=7))
    return History.from_frames(customers=sim.customers, contacts=sim.contacts, events=sim.events)


@pytest.fixture(scope="module")
def objective():
    return example_objective("premium_upsell").model_copy(update={"segment": ""})


def _moments(history: History, at: pd.Timestamp) -> pd.DataFrame:
    ids = history.customers["customer_id"]
    return pd.DataFrame(
        {
            "contact_id": [f"m-{i}" for i in range(len(ids))],
            "customer_id": ids.to_numpy(),
            "ts": at,
            "channel": "none",
            "slot": "now",
            "send_at": at,
            "objective": "premium_upsell",
            "cost": 0.0,
            "propensity": 1.0,
            "decision_id": "",
        }
    )


def test_online_and_offline_features_are_identical(tmp_path, history, objective):
    """Replay one stream event by event into the store, and offline from the tables."""
    at = history.events["ts"].min() + pd.Timedelta(days=8, hours=5, minutes=17)
    events = history.events[history.events["ts"] < at]
    contacts = history.contacts[history.contacts["send_at"].fillna(history.contacts["ts"]) < at]
    contacts = contacts[contacts["channel"] != "none"]

    store = open_store(f"sqlite:///{tmp_path / 'pit.db'}", create=True)
    store.upsert_customers(history.customer_records())
    # interleave contacts and events in time order, one at a time, as a live feed would
    past = History.from_frames(customers=history.customers, contacts=contacts, events=events)
    stream = sorted(
        [(e.ts, 1, e) for e in past.event_records()]
        + [(c.send_at or c.ts, 0, c) for c in past.contact_records()],
        key=lambda item: (item[0], item[1]),
    )
    for _, kind, record in stream:
        if kind:
            store.ingest_events([record])
        else:
            store.ingest_contacts([record])

    offline = build_training_set(
        customers=history.customers,
        contacts=pd.concat([contacts, _moments(history, at)], ignore_index=True).assign(
            objective=lambda f: np.where(
                f["contact_id"].str.startswith("m-"), "premium_upsell", "history"
            )
        ),
        events=history.events,  # later events exist in the table: the replay must not see them
        objective=objective,
        policy=ContactPolicy(),
        sample_nothing=False,
    )
    states = store.get_states(offline.customer_ids.tolist())
    online = np.array(
        [
            [customer_features(states[cid], at.timestamp())[f] for f in BEHAVIOUR_FEATURES]
            for cid in offline.customer_ids
        ],
        dtype=np.float32,
    )
    assert len(offline) > 250
    mismatch = np.argwhere(online != offline.customer)
    names = sorted({BEHAVIOUR_FEATURES[j] for _, j in mismatch})
    assert mismatch.size == 0, f"features differ online vs offline: {names}"
    assert offline.customer[:, BEHAVIOUR_FEATURES.index("contacts_30d")].sum() > 0


def test_decisions_see_only_the_past(history, objective):
    """Moving a purchase after the decision time changes nothing the decision sees."""
    at = history.events["ts"].min() + pd.Timedelta(days=6)
    moments = _moments(history, at).head(50)
    base = build_training_set(
        customers=history.customers, contacts=moments, events=history.events,
        objective=objective, policy=ContactPolicy(), sample_nothing=False,
    )  # fmt: skip
    future = history.events[history.events["ts"] > at]
    only_past = history.events[history.events["ts"] <= at]
    trimmed = build_training_set(
        customers=history.customers, contacts=moments, events=only_past,
        objective=objective, policy=ContactPolicy(), sample_nothing=False,
    )  # fmt: skip
    assert len(future) > 0
    np.testing.assert_array_equal(base.customer, trimmed.customer)
    np.testing.assert_array_equal(base.eligible, trimmed.eligible)


def test_rewards_count_outcomes_in_the_window_only(history, objective):
    data = build_training_set(
        customers=history.customers, contacts=history.contacts, events=history.events,
        objective=objective, policy=ContactPolicy(),
    )  # fmt: skip
    # reward = value x conversion - cost - harm, piece by piece
    rp = data.rewards
    expected = 40 * rp.conversion - rp.cost - 5 * rp.unsubscribes - 10 * rp.complaints
    np.testing.assert_allclose(data.reward, expected)
    assert 0 < rp.conversion.mean() < 0.5
    # logged propensities are carried through, the logged action is always in the space
    assert np.all((data.pscore > 0) & (data.pscore <= 1))
    assert data.eligible[:, 0].all()


def test_no_usable_decision_is_a_clear_error(history, objective):
    empty = history.contacts.iloc[:0]
    with pytest.raises(LearningError, match="no usable decision"):
        build_training_set(
            customers=history.customers, contacts=empty, events=history.events,
            objective=objective, policy=ContactPolicy(),
        )  # fmt: skip


def test_a_reduction_without_a_value_per_conversion_is_a_clear_error(history):
    # registering one is refused; one stored before that check still loads, but cannot train
    churn = example_objective("churn").model_copy(
        update={"value_from_event": True, "value_per_conversion": None, "segment": ""}
    )
    with pytest.raises(LearningError, match="'churn': value_per_conversion is needed to value"):
        build_training_set(
            customers=history.customers, contacts=history.contacts, events=history.events,
            objective=churn, policy=ContactPolicy(),
        )  # fmt: skip


def test_legacy_history_samples_do_nothing_moments(history, objective):
    sent = history.contacts[history.contacts["channel"] != "none"].assign(propensity=np.nan)
    data = build_training_set(
        customers=history.customers, contacts=sent, events=history.events,
        objective=objective, policy=ContactPolicy(), seed=3,
    )  # fmt: skip
    assert data.report["sampled_do_nothing"] > 0
    assert (data.action == 0).sum() > 0
    assert np.isnan(data.pscore).all()


def test_replay_in_processes_builds_the_same_examples(history, objective):
    """Customers split over forked workers give the examples of one serial replay."""
    tables = {"customers": history.customers, "contacts": history.contacts}
    kwargs = {**tables, "events": history.events, "objective": objective, "policy": ContactPolicy()}
    serial = build_training_set(**kwargs, workers=1)
    split = build_training_set(**kwargs, workers=3)
    assert len(serial) > 1000
    for name in ("customer_ids", "decision_ids", "ts", "customer", "action_features", "eligible"):
        assert np.array_equal(getattr(split, name), getattr(serial, name)), name
    for name in ("action", "costs", "reward"):
        assert np.array_equal(getattr(split, name), getattr(serial, name)), name
    assert np.array_equal(split.pscore, serial.pscore, equal_nan=True)
    pd.testing.assert_frame_equal(split.attributes, serial.attributes)
    assert split.report == serial.report
