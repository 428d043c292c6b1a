"""A day of organic behaviour: visits, purchases, support tickets and cancellations.

Organic behaviour does not depend on what the brand sends (except that saved customers do not
cancel, which is applied when events are written). Every customer draws the same random numbers
whatever happened before, so two runs of one world that differ only in their decisions see the
same organic days (common random numbers make policy comparisons sharper).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from decisioning.records import EventType
from experiments.simulator.clock import DAY, HOUR, LocalClock, weekday_of
from experiments.simulator.objectives import CATEGORIES
from experiments.simulator.response import integrated_hazard
from experiments.simulator.world import Population, WorldConfig

#: event type codes of the simulator's arrays: the index in ``EventType``
EVENT_TYPES: tuple[EventType, ...] = tuple(EventType)
EVENT_CODE: dict[EventType, int] = {t: i for i, t in enumerate(EVENT_TYPES)}
EVENT_DTYPES: dict[str, str] = {
    "cust": "i8",  # customer index (also for anonymous events, written without their id)
    "ts": "f8",
    "type": "i1",
    "channel": "i1",  # -1: no channel
    "contact": "i8",  # -1: no contact
    "value": "f8",
    "category": "i1",  # -1: no category
    "anon": "i8",  # -1: not anonymous; else the anonymous visitor's number
    "anonymous": "?",  # the event is written without its customer id
    "sent": "f8",  # send time of the contact the event belongs to (NaN for organic events)
}
_ACTIVITY_HOUR_SD = 2.5
_IDENTIFY_DELAY = 3 * HOUR


@dataclass(frozen=True, slots=True)
class OrganicDay:
    """What one day brings: its events, the tickets opened and the cancellations due."""

    events: dict[str, np.ndarray]
    ticket_opened: np.ndarray
    ticket_open_at: np.ndarray
    ticket_close_at: np.ndarray
    cancel_at: np.ndarray
    anonymous_used: int


def events(n: int, **columns: ArrayLike) -> dict[str, np.ndarray]:
    """Event columns of ``n`` rows; columns not given take their 'nothing' value."""
    defaults = {
        "channel": -1, "contact": -1, "value": np.nan, "category": -1, "anon": -1,
        "anonymous": False, "sent": np.nan,
    }  # fmt: skip
    out = {}
    for name, dtype in EVENT_DTYPES.items():
        value = columns[name] if name in columns else defaults[name]
        out[name] = np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()
    return out


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several event column sets, one after the other."""
    return {name: np.concatenate([p[name] for p in parts]) for name in EVENT_DTYPES}


def draw_day(
    world: WorldConfig,
    pop: Population,
    clock: LocalClock,
    *,
    day_start: float,
    alive: np.ndarray,
    ticket_open_at: np.ndarray,
    ticket_close_at: np.ndarray,
    next_anonymous: int,
    rng: np.random.Generator,
) -> OrganicDay:
    """Draw the organic events of the UTC day starting at ``day_start`` for ``alive`` customers."""
    n = pop.size
    noon = np.full(n, day_start + 12 * HOUR)
    offset = clock.offset(noon, pop.tz)
    weekday = weekday_of(noon + offset)
    day_weight = pop.weekday_weight[np.arange(n), weekday]

    # Support tickets: only customers without an open ticket can open one.
    u_ticket, t_ticket = rng.random(n), day_start + rng.random(n) * DAY
    duration = np.maximum(HOUR, rng.exponential(world.ticket_mean_days * DAY, n))
    can_open = alive & (ticket_close_at <= day_start)
    opened = can_open & (u_ticket < 1.0 - np.exp(-pop.ticket_rate))
    open_at = np.where(opened, t_ticket, ticket_open_at)
    close_at = np.where(opened, t_ticket + duration, ticket_close_at)

    hazard = integrated_hazard(
        world,
        rate=pop.churn_rate,
        start=np.full(n, day_start),
        end=np.full(n, day_start + DAY),
        new_until=pop.signup + world.new_customer_days * DAY,
        ticket_from=open_at,
        ticket_to=close_at,
    )
    u_cancel, t_cancel = rng.random(n), day_start + rng.random(n) * DAY
    cancels = alive & (u_cancel < 1.0 - np.exp(-hazard))
    cancel_at = np.where(cancels, t_cancel, np.inf)

    parts = [
        events(int(opened.sum()), cust=np.flatnonzero(opened), ts=open_at[opened],
               type=EVENT_CODE[EventType.SUPPORT_TICKET_OPENED]),
        events(int(opened.sum()), cust=np.flatnonzero(opened), ts=close_at[opened],
               type=EVENT_CODE[EventType.SUPPORT_TICKET_CLOSED]),
        events(int(cancels.sum()), cust=np.flatnonzero(cancels), ts=cancel_at[cancels],
               type=EVENT_CODE[EventType.CANCEL]),
    ]  # fmt: skip

    # Visits and app sessions, at local hours around the customer's peak hour.
    counts = rng.poisson(pop.activity_rate * day_weight)
    owner = np.repeat(np.arange(n), counts)
    ts = _around_peak(pop, owner, offset, day_start, rng)
    app = rng.random(len(owner)) < pop.app_share[owner]
    anonymous = ~app & (rng.random(len(owner)) < world.anonymous_share)
    identify_at = ts + rng.exponential(_IDENTIFY_DELAY, len(owner)) + 1.0
    keep = alive[owner]
    owner, ts, app, anonymous, identify_at = (
        owner[keep],
        ts[keep],
        app[keep],
        anonymous[keep],
        identify_at[keep],
    )
    anon = np.full(len(owner), -1, dtype=np.int64)
    anon[anonymous] = next_anonymous + np.arange(int(anonymous.sum()))
    kind = np.where(app, EVENT_CODE[EventType.APP_OPEN], EVENT_CODE[EventType.WEB_VISIT])
    parts.append(events(len(owner), cust=owner, ts=ts, type=kind, anon=anon, anonymous=anonymous))
    parts.append(
        events(int(anonymous.sum()), cust=owner[anonymous], ts=identify_at[anonymous],
               type=EVENT_CODE[EventType.IDENTIFY], anon=anon[anonymous])
    )  # fmt: skip

    # Purchases of each category, with their value.
    counts = rng.poisson(pop.purchase_rate * day_weight[:, None])
    owner = np.repeat(np.repeat(np.arange(n), len(CATEGORIES)), counts.ravel())
    category = np.repeat(np.tile(np.arange(len(CATEGORIES)), n), counts.ravel())
    ts = _around_peak(pop, owner, offset, day_start, rng)
    value = purchase_values(world, category, rng)
    keep = alive[owner]
    parts.append(
        events(int(keep.sum()), cust=owner[keep], ts=ts[keep],
               type=EVENT_CODE[EventType.PURCHASE], value=value[keep], category=category[keep])
    )  # fmt: skip
    return OrganicDay(
        events=concat(parts),
        ticket_opened=opened,
        ticket_open_at=open_at,
        ticket_close_at=close_at,
        cancel_at=cancel_at,
        anonymous_used=int(anonymous.sum()),
    )


def purchase_values(
    world: WorldConfig, category: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Order values of purchases in ``category`` (codes), rounded to cents."""
    median, sd = np.asarray(world.purchase_values).T
    return np.round(
        median[category] * np.exp(rng.normal(0.0, 1.0, len(category)) * sd[category]), 2
    )


def _around_peak(
    pop: Population,
    owner: np.ndarray,
    offset: np.ndarray,
    day_start: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Times within the UTC day whose local hour falls around each owner's peak hour."""
    local_hour = pop.peak_hour[owner] + rng.normal(0.0, _ACTIVITY_HOUR_SD, len(owner))
    seconds = np.mod(local_hour * HOUR - offset[owner], DAY)
    return day_start + seconds
