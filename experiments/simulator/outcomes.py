"""What customers do after a message: delivery, opens, clicks, conversions, opt-outs, complaints.

Each response is drawn when the decision is applied, from the probabilities the ground truth
uses (:class:`~experiments.simulator.response.Exposure`), and scheduled as events that the
world writes on the day they happen.
"""

from __future__ import annotations

import numpy as np

from decisioning.records import EventType
from experiments.simulator.clock import DAY, HOUR
from experiments.simulator.objectives import CATEGORIES, SimObjective
from experiments.simulator.organic import EVENT_CODE, concat, events, purchase_values
from experiments.simulator.response import Exposure
from experiments.simulator.state import WorldState
from experiments.simulator.world import PAID, WorldConfig

#: mean delay from delivery to open, per contact channel code (seconds)
OPEN_DELAY = np.array([3 * HOUR, 600.0, 900.0, 600.0, HOUR])


def draw_responses(
    world: WorldConfig,
    state: WorldState,
    objective: SimObjective,
    rng: np.random.Generator,
    *,
    idx: np.ndarray,
    ts: np.ndarray,
    channel: np.ndarray,
    number: np.ndarray,
    exp: Exposure,
) -> None:
    """Draw the responses to the decisions (customers ``idx`` at ``ts``) and schedule them.

    A conversion of an ``increase`` objective is a purchase of its category, preceded by an open
    and a click; for a ``reduce`` objective the customer is saved from cancelling until the end
    of the window. Unsubscribes withdraw the channel's consent from the moment they happen.
    """
    m = exp.deliverable
    k = int(m.sum())
    who, c, send, num, when = idx[m], channel[m].astype(np.int64), exp.send[m], number[m], ts[m]
    paid = c == PAID
    delivered = send + np.where(paid, rng.uniform(60, 1800, k), rng.uniform(1, 120, k))
    opened = rng.random(k) < exp.p_open[m]
    t_open = delivered + rng.exponential(OPEN_DELAY[np.minimum(c, PAID)]) + 1.0
    clicked = opened & (rng.random(k) < exp.p_click[m])
    t_click = t_open + rng.exponential(600.0, k) + 1.0
    converted = rng.random(k) < exp.uplift[m]
    unsub = rng.random(k) < exp.p_unsubscribe[m]
    t_unsub = delivered + rng.exponential(2 * HOUR, k) + 1.0
    complaint = rng.random(k) < exp.p_complaint[m]
    t_complaint = delivered + rng.exponential(3 * HOUR, k) + 1.0
    t_buy = delivered + rng.exponential(world.conversion_delay_days * DAY, k) + 3.0
    parts = []
    if objective.kind == "increase":
        # A converting customer opens and clicks before buying.
        t_open = np.where(converted, delivered + 0.3 * (t_buy - delivered), t_open)
        t_click = np.where(converted, delivered + 0.6 * (t_buy - delivered), t_click)
        cat = np.full(int(converted.sum()), CATEGORIES.index(str(objective.category)))
        parts.append(
            events(
                len(cat),
                cust=who[converted],
                ts=t_buy[converted],
                type=EVENT_CODE[EventType.PURCHASE],
                channel=c[converted],
                contact=num[converted],
                value=purchase_values(world, cat, rng),
                category=cat,
                sent=send[converted],
            )
        )
    else:
        end = when[converted] + objective.window_days * DAY
        state.protect(who[converted], send[converted], end)
    opened |= converted
    clicked |= converted
    state.revoke(who[unsub], c[unsub], t_unsub[unsub])
    for kind, mask, t in (
        (EventType.DELIVERED, np.ones(k, dtype=bool), delivered),
        (EventType.OPEN, opened, t_open),
        (EventType.CLICK, clicked, t_click),
        (EventType.UNSUBSCRIBE, unsub, t_unsub),
        (EventType.COMPLAINT, complaint, t_complaint),
    ):
        parts.append(
            events(
                int(mask.sum()),
                cust=who[mask],
                ts=t[mask],
                type=EVENT_CODE[kind],
                channel=c[mask],
                contact=num[mask],
                sent=send[mask],
            )
        )
    state.events.add(**concat(parts))
