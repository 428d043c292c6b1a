"""Synthetic decision contexts and logged batches for the learners' tests (no simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from decisioning.actions import SLOT_HOUR, Action, ActionSpace, Slot
from decisioning.channels import Channel
from decisioning.features import ACTION_FEATURES, BEHAVIOUR_FEATURES
from decisioning.policy import DecisionContext
from models.encoding import BanditBatch, default_costs

SPACE = ActionSpace.build()
SEGMENTS = ("new", "loyal", "lapsed")
PLANS = ("free", "pro")
COUNTRIES = ("FR", "DE", "US")
NOW = 1_700_000_000.0


def _feature(rng: np.random.Generator, name: str) -> float:
    if name.startswith("consent_") or name in ("known", "owned_unopened", "ticket_open"):
        return float(rng.random() < (0.8 if name.startswith("consent_") else 0.3))
    if name == "preferred_hour":
        return float(rng.integers(-1, 24))
    if name == "local_hour":
        return float(rng.integers(0, 24))
    if name == "weekday":
        return float(rng.integers(0, 7))
    if "days" in name:
        return float(rng.uniform(0, 30))
    if name.endswith(("_rate", "activity", "pressure")):
        return float(rng.random())
    return float(rng.poisson(2.0))


def _action_row(
    rng: np.random.Generator, action: Action, customer: dict[str, float]
) -> dict[str, float]:
    if action.is_nothing:
        return dict.fromkeys(ACTION_FEATURES, 0.0)
    ch = action.channel.value
    now = action.slot is Slot.NOW
    return {
        "is_contact": 1.0,
        "send_delay_hours": 0.0 if now else float(rng.uniform(1, 72)),
        "send_hour": customer["local_hour"] if now else float(SLOT_HOUR[action.slot]),
        "send_weekend": 1.0 if action.slot is Slot.WEEKEND_MORNING else 0.0,
        "hour_affinity": float(rng.uniform(0, 0.3)),
        "channel_open_rate": customer[f"{ch}_open_rate"],
        "channel_click_rate": customer[f"{ch}_click_rate"],
        "channel_contacts_7d": customer[f"{ch}_contacts_7d"],
        "channel_days_since_open": customer[f"{ch}_days_since_open"],
    }


def make_context(
    rng: np.random.Generator,
    *,
    actions: ActionSpace = SPACE,
    eligible_share: float = 0.6,
    eligible: np.ndarray | None = None,
    customer_id: str = "c0",
    **features: float,
) -> DecisionContext:
    """A random customer at a moment; ``features`` override behavioural features by name."""
    customer = {name: _feature(rng, name) for name in BEHAVIOUR_FEATURES}
    customer.update(features)
    if eligible is None:
        eligible = rng.random(len(actions)) < eligible_share
        eligible[0] = True
    attributes = {
        "segment": str(rng.choice(SEGMENTS)),
        "plan": str(rng.choice(PLANS)),
        "country": str(rng.choice(COUNTRIES)),
        "age": int(rng.integers(18, 80)),
    }
    return DecisionContext(
        customer_id=customer_id,
        now=NOW,
        actions=actions,
        customer=customer,
        attributes=attributes,
        action_features=np.array([list(_action_row(rng, a, customer).values()) for a in actions]),
        eligible=np.asarray(eligible, dtype=bool),
        costs=default_costs(actions),
    )


def planted_conversion(context: DecisionContext) -> np.ndarray:
    """The planted truth: e-mail converts with the customer's activity, push at a flat 25%."""
    activity = context.customer["activity"]
    out = np.empty(len(context.actions))
    for i, a in enumerate(context.actions):
        if a.is_nothing:
            out[i] = 0.02
        elif a.channel is Channel.EMAIL:
            out[i] = 0.02 + 0.6 * activity
        elif a.channel is Channel.PUSH:
            out[i] = 0.25
        else:
            out[i] = 0.05
    return out


def make_logged_batch(
    rng: np.random.Generator, n: int, *, eligible_share: float = 0.6
) -> BanditBatch:
    """``n`` contexts logged by a uniform-random policy, with conversions drawn from the truth."""
    contexts, actions, rewards, pscores = [], [], [], []
    for i in range(n):
        ctx = make_context(rng, eligible_share=eligible_share, customer_id=f"c{i}")
        options = np.flatnonzero(ctx.eligible)
        a = int(rng.choice(options))
        contexts.append(ctx)
        actions.append(a)
        rewards.append(float(rng.random() < planted_conversion(ctx)[a]))
        pscores.append(1.0 / len(options))
    return BanditBatch.from_contexts(contexts, action=actions, reward=rewards, pscore=pscores)


@pytest.fixture(scope="session")
def logged_batch() -> BanditBatch:
    """A planted world's log: 3000 uniform-random decisions."""
    return make_logged_batch(np.random.default_rng(7), 3000)
