"""The policies that write simulated history: uniform exploration and a legacy campaign.

``uniform`` logs its propensities (off-policy evaluation can use them); ``legacy`` is the kind
of rule-based calendar most brands run, and logs none.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from decisioning.actions import Action, ActionSpace, Slot
from decisioning.channels import Channel
from decisioning.errors import InvalidInput
from experiments.simulator.clock import DAY, HOUR
from experiments.simulator.engine import Simulator
from experiments.simulator.response import CHANNELS

LoggingPolicy = Literal["uniform", "legacy"]
LOGGING_POLICIES: tuple[str, ...] = ("uniform", "legacy")

#: the legacy campaign's three messages
LEGACY_EMAIL = Action(Channel.EMAIL, Slot.TOMORROW_MORNING)
LEGACY_PUSH = Action(Channel.PUSH, Slot.TODAY_EVENING)
LEGACY_RETARGET = Action(Channel.PAID_SOCIAL, Slot.NOW)
_EMAIL, _PUSH, _PAID = (
    CHANNELS.index(c) for c in (Channel.EMAIL, Channel.PUSH, Channel.PAID_SOCIAL)
)


def uniform_choice(eligible: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One action per row drawn uniformly among the ``eligible`` ones, with its propensity.

    Parameters
    ----------
    eligible : ndarray of bool, shape (n, n_actions)
        Column 0 (doing nothing) must be True on every row.
    """
    if eligible.ndim != 2 or (len(eligible) and not eligible[:, 0].all()):
        raise InvalidInput("eligible must be (n, n_actions) with doing nothing always allowed")
    allowed = eligible.sum(axis=1)
    pick = np.floor(rng.random(len(eligible)) * allowed)
    choice = np.argmax(np.cumsum(eligible, axis=1) > pick[:, None], axis=1)
    return choice, 1.0 / allowed


def legacy_choice(
    sim: Simulator, customer_idx: np.ndarray, ts: np.ndarray, actions: ActionSpace
) -> np.ndarray:
    """The legacy campaign's action per moment (an index into ``actions``).

    A weekly e-mail (tomorrow morning) to customers who consent to e-mail; a weekly push
    (this evening) to those who consent to push but not e-mail; paid-social retargeting of
    customers whose last owned message went unopened for 48 hours (at most once a week).
    """
    try:
        email, push, retarget = (
            actions.index(a) for a in (LEGACY_EMAIL, LEGACY_PUSH, LEGACY_RETARGET)
        )
    except ValueError as err:
        raise InvalidInput(f"actions: the legacy campaign needs its actions ({err})") from None
    idx = np.asarray(customer_idx, dtype=np.int64)
    at = np.asarray(ts, dtype=float)
    decided, owned_sent, opened = sim.last_contacts(idx, at)
    consent = sim.state.consent_at(idx, at)
    week = 7 * DAY
    email_due = consent[:, _EMAIL] & (at - decided[:, _EMAIL] >= week)
    push_due = ~consent[:, _EMAIL] & consent[:, _PUSH] & (at - decided[:, _PUSH] >= week)
    unopened = (owned_sent <= at - 48 * HOUR) & (owned_sent >= at - week) & (opened < owned_sent)
    retarget_due = unopened & (at - decided[:, _PAID] >= week)
    choice = np.zeros(len(idx), dtype=np.int64)
    choice = np.where(retarget_due, retarget, choice)
    choice = np.where(push_due, push, choice)
    return np.where(email_due, email, choice)
