"""Action features: the matrix the policy sees equals the features of each action one by one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.actions import ActionSpace
from decisioning.customer_view import CustomerState
from decisioning.features import (
    ACTION_FEATURES,
    action_feature_matrices,
    action_feature_matrix,
    action_features,
    customer_features,
)
from decisioning.guardrails import ContactPolicy, ContactPolicySettings

SPACE = ActionSpace.build()
ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Adelaide")
NOW = 1_764_000_000.0  # a Monday afternoon in November 2025 (UTC)


@st.composite
def states(draw: st.DrawFn) -> CustomerState:
    state = CustomerState(
        "c1",
        signup_at=NOW - draw(st.floats(0, 400)) * 86_400,
        timezone=draw(st.sampled_from(ZONES)),
        consents={c: draw(st.booleans()) for c in ("email", "sms", "push", "whatsapp")},
    )
    state.hour_counts = draw(st.lists(st.integers(0, 5), min_size=24, max_size=24))
    for stats in state.channels.values():
        stats.contacts = draw(st.integers(0, 20))
        stats.opens = draw(st.integers(0, stats.contacts))
        stats.clicks = draw(st.integers(0, stats.opens))
        if stats.contacts:
            stats.last_contact = NOW - draw(st.floats(0.1, 40)) * 86_400
            stats.recent.extend(sorted(NOW - d * 86_400 for d in draw(
                st.lists(st.floats(0.01, 29.9), max_size=4))))  # fmt: skip
        if stats.opens:
            stats.last_open = NOW - draw(st.floats(0.1, 40)) * 86_400
    return state


@settings(max_examples=60, deadline=None)
@given(state=states(), hours=st.floats(0, 24 * 7), quiet=st.booleans())
def test_the_matrix_equals_the_features_of_each_action(state, hours, quiet):
    now = NOW + hours * 3600
    policy = ContactPolicy(ContactPolicySettings(**({} if quiet else {"quiet_hours": None})))
    send = policy.evaluate(state, SPACE, now).send_at  # deferred by quiet hours, or not
    customer = customer_features(state, now)
    matrix = action_feature_matrix(state, SPACE.actions, now, customer, send)
    assert matrix.shape == (len(SPACE), len(ACTION_FEATURES))
    for i, action in enumerate(SPACE.actions):
        one = action_features(state, action, now, customer, send_ts=float(send[i]))
        assert matrix[i].tolist() == [one[k] for k in ACTION_FEATURES], action.key


def test_send_times_must_match_the_actions():
    state = CustomerState("c1")
    with pytest.raises(ValueError, match=r"expected \(31,\)"):
        action_feature_matrix(
            state, SPACE.actions, NOW, customer_features(state, NOW), np.zeros(30)
        )


@settings(max_examples=25, deadline=None)
@given(chunk=st.lists(states(), min_size=1, max_size=12), hours=st.floats(0, 24 * 7))
def test_the_chunk_matrices_equal_each_customer_matrix(chunk, hours):
    now = NOW + hours * 3600
    policy = ContactPolicy(ContactPolicySettings())
    send = np.array([policy.evaluate(s, SPACE, now).send_at for s in chunk])
    customers = [customer_features(s, now) for s in chunk]
    many = action_feature_matrices(chunk, SPACE.actions, now, customers, send)
    assert many.shape == (len(chunk), len(SPACE), len(ACTION_FEATURES))
    for i, state in enumerate(chunk):
        one = action_feature_matrix(state, SPACE.actions, now, customers[i], send[i])
        assert many[i].tolist() == one.tolist()


@settings(max_examples=40, deadline=None)
@given(
    chunk=st.lists(states(), min_size=1, max_size=10),
    hours=st.floats(0, 24 * 7),
    ticket=st.lists(st.booleans(), min_size=10, max_size=10),
)
def test_blocked_actions_have_zero_rows_and_the_allowed_ones_their_features(chunk, hours, ticket):
    now = NOW + hours * 3600
    policy = ContactPolicy(ContactPolicySettings())
    for state, open_ticket in zip(chunk, ticket, strict=False):
        state.open_tickets = int(open_ticket)  # every contact blocked for some customers
    verdicts = [policy.evaluate(s, SPACE, now) for s in chunk]
    send = np.array([v.send_at for v in verdicts])
    eligible = np.array([v.eligible for v in verdicts])
    customers = [customer_features(s, now) for s in chunk]
    many = action_feature_matrices(chunk, SPACE.actions, now, customers, send, eligible)
    for i, state in enumerate(chunk):
        full = action_feature_matrix(state, SPACE.actions, now, customers[i], send[i])
        one = action_feature_matrix(state, SPACE.actions, now, customers[i], send[i], eligible[i])
        assert one[eligible[i]].tolist() == full[eligible[i]].tolist()
        assert not one[~eligible[i]].any()
        assert many[i].tolist() == one.tolist()


def test_the_eligibility_mask_must_match_the_actions():
    state = CustomerState("c1")
    customer = customer_features(state, NOW)
    with pytest.raises(ValueError, match=r"eligible has shape \(30,\), expected \(31,\)"):
        action_feature_matrix(
            state, SPACE.actions, NOW, customer, np.full(31, NOW), np.ones(30, dtype=bool)
        )
