"""How a customer responds to a contact, and what each action is truly worth.

The same functions serve the world (drawing what happens after a contact) and the ground truth
(the expected net value of every action), so the truth is exactly the expectation of what the
simulator then draws, given the world's state at the decision moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from decisioning.channels import CONTACT_CHANNELS, DEFAULT_COSTS, Channel
from experiments.simulator.clock import DAY
from experiments.simulator.objectives import SimObjective
from experiments.simulator.world import WorldConfig

#: channel codes of the simulator's arrays: the index in ``Channel`` (``none`` last)
CHANNELS: tuple[Channel, ...] = tuple(Channel)
NONE_CODE = CHANNELS.index(Channel.NONE)
#: cost of one contact per channel code, ``none`` included (free)
CHANNEL_COSTS = np.array([DEFAULT_COSTS[c] for c in CHANNELS])
_MAX_UPLIFT = 0.9
_MAX_OPEN = 0.95
assert CHANNELS[: len(CONTACT_CHANNELS)] == CONTACT_CHANNELS  # arrays index channels the same way


@dataclass(frozen=True, slots=True)
class Exposure:
    """What a set of contacts would do, one entry per (customer, action); zeros for do-nothing.

    ``uplift`` is the probability the message converts (``increase``) or saves the customer
    (``reduce``); the other probabilities are per contact, ``p_click`` given an open.
    """

    send: np.ndarray
    deliverable: np.ndarray
    uplift: np.ndarray
    p_open: np.ndarray
    p_click: np.ndarray
    p_unsubscribe: np.ndarray
    p_complaint: np.ndarray


def hour_response(send_hour: np.ndarray, peak_hour: np.ndarray, world: WorldConfig) -> np.ndarray:
    """Response to a message sent at local ``send_hour`` for a customer most active at ``peak_hour``.

    1 at the peak, falling as a Gaussian of the circular distance in hours, never below the floor.
    """
    d = np.abs(np.asarray(send_hour, dtype=float) - peak_hour)
    d = np.minimum(d, 24.0 - d)
    floor = world.hour_response_floor
    return floor + (1.0 - floor) * np.exp(-0.5 * (d / world.hour_response_sd) ** 2)


def exposure(
    world: WorldConfig,
    *,
    channel: np.ndarray,
    send: np.ndarray,
    affinity: np.ndarray,
    hour_factor: np.ndarray,
    day_factor: np.ndarray,
    pressure: np.ndarray,
    responsiveness: np.ndarray,
    deliverable: np.ndarray,
    ticket_open: np.ndarray,
    recent_purchase: np.ndarray,
    reduce: bool,
) -> Exposure:
    """Response probabilities of contacts on ``channel`` (codes) given the customer's state.

    Uplift falls with pressure and is zero while a support ticket is open or when the promoted
    category was bought recently; unsubscribe and complaint risks rise with pressure, are higher
    for customers who do not like the channel, and complaints soar while a ticket is open.
    """
    contact = (channel != NONE_CODE) & deliverable
    ch = np.minimum(channel, NONE_CODE - 1)
    fatigue = np.exp(-pressure / world.response_pressure_scale)
    harm = (1.0 + pressure / world.harm_pressure_scale) * (1.5 - affinity)
    scale = world.retention_multiplier if reduce else 1.0
    floor = world.uplift_affinity_floor
    reach = floor + (1.0 - floor) * affinity
    uplift = np.minimum(
        _MAX_UPLIFT, scale * responsiveness * reach * hour_factor * day_factor * fatigue
    )
    uplift = np.where(contact & ~ticket_open & ~recent_purchase, uplift, 0.0)
    p_open = np.minimum(
        _MAX_OPEN, np.asarray(world.open_base)[ch] * affinity * (0.4 + 0.6 * hour_factor) * fatigue
    )
    p_click = np.minimum(_MAX_OPEN, np.asarray(world.click_base)[ch] * (0.5 + affinity))
    p_unsub = np.asarray(world.unsubscribe_base)[ch] * harm
    p_complaint = (
        np.asarray(world.complaint_base)[ch]
        * harm
        * np.where(ticket_open, world.ticket_complaint_multiplier, 1.0)
    )
    zero = np.zeros_like(uplift)
    return Exposure(
        send=send,
        deliverable=contact,
        uplift=uplift,
        p_open=np.where(contact, p_open, zero),
        p_click=np.where(contact, p_click, zero),
        p_unsubscribe=np.where(contact, np.minimum(p_unsub, 1.0), zero),
        p_complaint=np.where(contact, np.minimum(p_complaint, 1.0), zero),
    )


def integrated_hazard(
    world: WorldConfig,
    *,
    rate: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    new_until: np.ndarray,
    ticket_from: np.ndarray,
    ticket_to: np.ndarray,
) -> np.ndarray:
    """Cancel hazard integrated from ``start`` to ``end`` (epoch seconds), in expected cancels.

    The daily ``rate`` is raised additively while the customer is new (before ``new_until``)
    and while a support ticket is open (``ticket_from`` to ``ticket_to``).
    """
    length = np.maximum(0.0, end - start)
    young = _overlap(start, end, -np.inf, new_until)
    ticket = _overlap(start, end, ticket_from, ticket_to)
    extra = (world.new_customer_churn_multiplier - 1.0) * young + (
        world.ticket_churn_multiplier - 1.0
    ) * ticket
    return rate * (length + extra) / DAY


def _overlap(a1: np.ndarray, a2: np.ndarray, b1: np.ndarray | float, b2: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, np.minimum(a2, b2) - np.maximum(a1, b1))


def net_value(
    objective: SimObjective,
    world: WorldConfig,
    exp: Exposure,
    *,
    channel: np.ndarray,
    ts: np.ndarray,
    organic_rate: np.ndarray | None = None,
    hazard: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Expected net value: value x P(conversion in window | action) - cost - expected harm.

    For ``increase``, ``organic_rate`` is the daily rate of the outcome without contact; for
    ``reduce``, ``hazard`` is the cancel hazard integrated over (decision -> send, send -> end of
    window), and conversion means no cancel in the window. Doing nothing costs nothing.
    """
    window = objective.window_days * DAY
    left = np.maximum(0.0, ts + window - exp.send)
    if objective.kind == "increase":
        if organic_rate is None:
            raise ValueError("an increase objective needs the organic rate")
        p_organic = 1.0 - np.exp(-organic_rate * objective.window_days)
        in_window = 1.0 - np.exp(-left / (world.conversion_delay_days * DAY))
        p_convert = 1.0 - (1.0 - p_organic) * (1.0 - exp.uplift * in_window)
    else:
        if hazard is None:
            raise ValueError("a reduce objective needs the integrated hazard")
        before, after = hazard
        p_convert = np.exp(-(before + after)) + np.exp(-before) * exp.uplift * (
            1.0 - np.exp(-after)
        )
    harm = (
        objective.unsubscribe_penalty * exp.p_unsubscribe
        + objective.complaint_penalty * exp.p_complaint
    )
    return objective.value * p_convert - CHANNEL_COSTS[channel] - harm


def oracle_actions(values: np.ndarray, eligible: np.ndarray | None = None) -> np.ndarray:
    """Index of the best action per row of ``values`` (n, n_actions), among ``eligible`` ones."""
    values = np.asarray(values, dtype=float)
    if eligible is not None:
        eligible = np.asarray(eligible, dtype=bool)
        if eligible.shape != values.shape:
            raise ValueError(f"eligible has shape {eligible.shape}, values {values.shape}")
        values = np.where(eligible, values, -np.inf)
    return np.argmax(values, axis=1)


def capture_share(
    chosen_values: np.ndarray, oracle_values: np.ndarray, nothing_values: np.ndarray
) -> float:
    """Share of the oracle's gain over doing nothing that a policy's choices capture.

    ``sum(chosen - nothing) / sum(oracle - nothing)``: 1 for the oracle, 0 for doing nothing,
    negative for a policy that destroys value. NaN when the oracle gains nothing.
    """
    chosen = np.asarray(chosen_values, dtype=float)
    oracle = np.asarray(oracle_values, dtype=float)
    nothing = np.asarray(nothing_values, dtype=float)
    if not chosen.shape == oracle.shape == nothing.shape:
        raise ValueError(
            f"value arrays differ in shape: {chosen.shape}, {oracle.shape}, {nothing.shape}"
        )
    gain = float(np.sum(oracle - nothing))
    if gain <= 0.0:
        return float("nan")
    return float(np.sum(chosen - nothing)) / gain
