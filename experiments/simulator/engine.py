"""The steppable simulated world: decision moments, ground truth, decisions and the day's events.

A day runs as: ``decision_moments(day)`` (who can be decided for, and when), then any number of
``apply_decisions(day, ...)`` (a logging policy's or a closed-loop experiment's), then
``step(day)``, which writes the day's events (organic behaviour and responses to contacts sent)
and moves the world to the next day. ``ground_truth`` gives the expected net value of every
action at any moment of the current day or later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from decisioning.actions import Action, ActionSpace
from decisioning.errors import InvalidInput
from decisioning.records import EventType
from experiments.simulator.buffer import Columns
from experiments.simulator.clock import DAY, SLOT_CODES, LocalClock
from experiments.simulator.objectives import CATEGORIES, SimObjective, get_objective
from experiments.simulator.organic import (
    EVENT_CODE,
    EVENT_DTYPES,
    draw_day,
)
from experiments.simulator.outcomes import draw_responses
from experiments.simulator.response import (
    CHANNEL_COSTS,
    CHANNELS,
    NONE_CODE,
    Exposure,
    exposure,
    hour_response,
    integrated_hazard,
    net_value,
)
from experiments.simulator.state import CHANNEL_WEIGHTS, WorldState
from experiments.simulator.tables import SimulatedHistory, build_history, format_ids
from experiments.simulator.world import N_CONSENT, PAID, WorldConfig, draw_population

DEFAULT_START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday, with DST changes within 30 days
CONTACT_DTYPES = {
    "contact": "i8", "cust": "i8", "ts": "f8", "channel": "i1", "slot": "i1", "send": "f8",
    "objective": "O", "cost": "f8", "propensity": "f8", "decision": "O", "category": "i1",
}  # fmt: skip
_STREAM_POPULATION, _STREAM_ORGANIC, _STREAM_MOMENTS, _STREAM_RESPONSES = 0, 1, 2, 3
_CODE = EVENT_CODE


class Simulator:
    """A seedable synthetic world of customers whose behaviour follows hidden traits.

    Parameters
    ----------
    customers : int
        Number of customers.
    seed : int
        Seed of every random draw: the same seed and the same decisions give the same world.
    start : datetime, optional
        UTC-aware start of day 0 (default 2024-03-04).
    world : WorldConfig, optional
        The world's parameters (default: the calibrated default world).
    """

    def __init__(
        self,
        customers: int,
        *,
        seed: int = 0,
        start: datetime | None = None,
        world: WorldConfig | None = None,
    ) -> None:
        if customers < 1:
            raise InvalidInput(f"customers must be >= 1, got {customers}")
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise InvalidInput("start must be timezone-aware")
        self.world = world or WorldConfig()
        self.seed = int(seed)
        self.start = start.astimezone(UTC)
        self._t0 = self.start.timestamp()
        self.population = draw_population(
            self.world, customers, self._t0, self._rng(_STREAM_POPULATION)
        )
        self.clock = LocalClock(self.world.timezones)
        self.state = WorldState(self.world, self.population, self._t0)
        self.contact_log = Columns(CONTACT_DTYPES)
        self.event_log = Columns({**EVENT_DTYPES, "event": "i8"})
        self.day = 0  # the day being simulated; earlier days are written
        self._prepared = -1
        self._moments: tuple[np.ndarray, np.ndarray] | None = None
        self._applied = 0
        self._next_contact = 0
        self._next_event = 0
        self._next_anonymous = 0

    @property
    def n_customers(self) -> int:
        return self.population.size

    def day_start(self, day: int) -> float:
        """Epoch seconds at which ``day`` starts."""
        return self._t0 + day * DAY

    def _rng(self, stream: int, *key: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, *key])

    # -- a day --------------------------------------------------------------------------------

    def _check_day(self, day: int) -> None:
        if day != self.day:
            raise InvalidInput(f"day {day}: the world is at day {self.day} (days run in order)")

    def _prepare(self) -> None:
        if self._prepared == self.day:
            return
        s = self.state
        organic = draw_day(
            self.world, self.population, self.clock,
            day_start=self.day_start(self.day), alive=~np.isfinite(s.cancel_at),
            ticket_open_at=s.ticket_open_at, ticket_close_at=s.ticket_close_at,
            next_anonymous=self._next_anonymous, rng=self._rng(_STREAM_ORGANIC, self.day),
        )  # fmt: skip
        s.events.add(**organic.events)
        s.ticket_open_at, s.ticket_close_at = organic.ticket_open_at, organic.ticket_close_at
        s.pending_cancel = organic.cancel_at
        self._next_anonymous += organic.anonymous_used
        self._prepared = self.day
        self._moments = None
        self._applied = 0

    def decision_moments(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """Who can be decided for during ``day``, and when: (customer indices, epoch seconds).

        Each active customer has Poisson moments (``decision_rate`` a day) at local daytime
        hours; sorted by time.
        """
        self._check_day(day)
        self._prepare()
        if self._moments is not None:
            return self._moments
        n, w, s = self.n_customers, self.world, self.state
        rng = self._rng(_STREAM_MOMENTS, day)
        lo, hi = w.daytime_hours
        counts = rng.poisson(w.decision_rate * 24.0 / (hi - lo), n)
        owner = np.repeat(np.arange(n), counts)
        ts = self.day_start(day) + rng.random(len(owner)) * DAY
        hour = self.clock.local_hour(ts, self.population.tz[owner])
        due = s.pending_cancel[owner]
        ok = (hour >= lo) & (hour < hi) & ~np.isfinite(s.cancel_at[owner])
        ok &= (ts < due) | s.protected(owner, due)
        owner, ts = owner[ok], ts[ok]
        order = np.lexsort((owner, ts))
        self._moments = (owner[order], ts[order])
        return self._moments

    def release(self, until: float) -> int:
        """Write the current day's events that happen before ``until``; returns how many.

        A closed loop calls it between decisions to feed the day's events to the service as
        they happen; ``step`` then writes the rest of the day. The events written are the same
        as without it.
        """
        self._prepare()
        end = self.day_start(self.day) + DAY
        if until > end:
            raise InvalidInput(f"until: the world is at day {self.day}, which ends at {end}")
        return self._write(until)

    def step(self, day: int) -> int:
        """Write the events of ``day`` and move to the next day; returns the events written."""
        self._check_day(day)
        self._prepare()
        end = self.day_start(day) + DAY
        written = self._write(end)
        self.state.fold_contacts(end)
        self.day += 1
        return written

    def _write(self, end: float) -> int:
        """Write the drawn events before ``end`` to the event log, in time order."""
        s = self.state
        ev = s.events.pop(s.events.data["ts"] < end)
        cust, ts, kind = ev["cust"], ev["ts"], ev["type"]
        keep = ts <= s.cancel_at[cust]
        cancel = kind == _CODE[EventType.CANCEL]
        keep &= ~(cancel & s.protected(cust, ts))
        ch = ev["channel"].astype(np.int64)
        owned = (ch >= 0) & (ch < N_CONSENT)
        # Nothing of a message whose consent was withdrawn before it went out reaches anyone.
        keep[owned] &= s.revoked_at[cust[owned], ch[owned]] >= ev["sent"][owned]
        cancelled = np.full(self.n_customers, np.inf)
        np.minimum.at(cancelled, cust[keep & cancel], ts[keep & cancel])
        keep &= ts <= cancelled[cust]
        s.cancel_at = np.minimum(s.cancel_at, cancelled)
        ev = {name: col[keep] for name, col in ev.items()}
        order = np.argsort(ev["ts"], kind="stable")
        ev = {name: col[order] for name, col in ev.items()}
        written = len(order)
        ev["event"] = self._next_event + np.arange(written)
        self._next_event += written
        self.event_log.add(**ev)

        buy = ev["type"] == _CODE[EventType.PURCHASE]
        np.maximum.at(s.last_buy, (ev["cust"][buy], ev["category"][buy]), ev["ts"][buy])
        opens = (ev["type"] == _CODE[EventType.OPEN]) & (ev["channel"] >= 0)
        opens &= ev["channel"] < N_CONSENT
        np.maximum.at(s.last_owned_open, ev["cust"][opens], ev["ts"][opens])
        return written

    # -- the truth ----------------------------------------------------------------------------

    def _check_moments(self, idx: np.ndarray, ts: np.ndarray) -> None:
        if idx.shape != ts.shape or idx.ndim != 1:
            raise InvalidInput(f"customer_idx {idx.shape} and ts {ts.shape} must be 1-d, one shape")
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n_customers):
            raise InvalidInput(f"customer_idx out of range 0..{self.n_customers - 1}")
        if len(ts) and ts.min() < self.state.now:
            raise InvalidInput(
                f"ts: the world is at day {self.day}; moments before its start are past"
            )

    def _send(self, idx: np.ndarray, ts: np.ndarray, channel: np.ndarray, slot: np.ndarray):
        send, hour, weekday = self.clock.send_times(slot, ts, self.population.tz[idx])
        return np.where(channel == NONE_CODE, ts, send), hour, weekday

    def _values(
        self,
        idx: np.ndarray,
        ts: np.ndarray,
        channel: np.ndarray,
        slot: np.ndarray,
        objective: SimObjective,
    ) -> tuple[np.ndarray, Exposure]:
        pop, s, w = self.population, self.state, self.world
        send, hour, weekday = self._send(idx, ts, channel, slot)
        c = np.minimum(channel, PAID).astype(np.int64)
        owned = c < N_CONSENT
        deliverable = (channel != NONE_CODE) & (
            ~owned | (s.revoked_at[idx, np.minimum(c, N_CONSENT - 1)] > send)
        )
        increase = objective.kind == "increase"
        if increase:
            cat = CATEGORIES.index(str(objective.category))
            last = s.last_purchase_before(idx, ts, cat)
            recent = last >= ts - w.recent_purchase_days * DAY
        else:
            recent = np.zeros(len(idx), dtype=bool)
        exp = exposure(
            w, channel=channel, send=send, affinity=pop.affinity[idx, c],
            hour_factor=hour_response(hour, pop.peak_hour[idx], w),
            day_factor=pop.weekday_weight[idx, weekday], pressure=s.pressure_at(idx, send),
            responsiveness=pop.responsiveness[idx], deliverable=deliverable,
            ticket_open=s.ticket_known_open(idx, ts, send), recent_purchase=recent,
            reduce=not increase,
        )  # fmt: skip
        if increase:
            rate = pop.purchase_rate[idx, cat]
            return net_value(objective, w, exp, channel=channel, ts=ts, organic_rate=rate), exp
        end = ts + objective.window_days * DAY
        mid = np.clip(send, ts, end)
        known = s.ticket_open_at[idx] <= ts  # tickets not yet opened are not foreseen

        def hazard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return integrated_hazard(
                w, rate=pop.churn_rate[idx], start=a, end=b,
                new_until=pop.signup[idx] + w.new_customer_days * DAY,
                ticket_from=np.where(known, s.ticket_open_at[idx], np.inf),
                ticket_to=np.where(known, s.ticket_close_at[idx], -np.inf),
            )  # fmt: skip

        values = net_value(
            objective, w, exp, channel=channel, ts=ts, hazard=(hazard(ts, mid), hazard(mid, end))
        )
        return values, exp

    def ground_truth(
        self,
        customer_idx: np.ndarray,
        ts: np.ndarray,
        actions: ActionSpace,
        objective: SimObjective | str,
    ) -> np.ndarray:
        """Expected net value of every action for customers ``customer_idx`` at epoch ``ts``.

        Returns an (n, len(actions)) array: value x P(conversion within the window | action)
        - channel cost - expected fatigue harm (penalties x P(unsubscribe), P(complaint)).
        Moments must be in the current day or later; later days are valued as the world is now.
        """
        obj = get_objective(objective)
        idx = np.asarray(customer_idx, dtype=np.int64)
        at = np.asarray(ts, dtype=float)
        self._check_moments(idx, at)
        self._prepare()
        channel, slot = action_codes(actions.keys)
        n, k = len(idx), len(actions)
        values, _ = self._values(
            np.repeat(idx, k), np.repeat(at, k), np.tile(channel, n), np.tile(slot, n), obj
        )
        return values.reshape(n, k)

    def eligible(
        self, customer_idx: np.ndarray, ts: np.ndarray, actions: ActionSpace
    ) -> np.ndarray:
        """Which actions the customers' consents allow at ``ts``: (n, len(actions)) booleans.

        Doing nothing and paid channels need no consent; owned channels need the customer's.
        """
        idx = np.asarray(customer_idx, dtype=np.int64)
        at = np.asarray(ts, dtype=float)
        self._check_moments(idx, at)
        channel, _ = action_codes(actions.keys)
        consent = np.column_stack([self.state.consent_at(idx, at), np.ones((len(idx), 2), bool)])
        return consent[:, np.minimum(channel, NONE_CODE)]

    # -- decisions ----------------------------------------------------------------------------

    def apply_decisions(
        self,
        day: int,
        customer_idx: np.ndarray,
        ts: np.ndarray,
        action_keys: Sequence[str] | np.ndarray,
        decision_ids: Sequence[str] | np.ndarray,
        *,
        objective: SimObjective | str,
        propensities: np.ndarray | None = None,
    ) -> np.ndarray:
        """Log decisions taken during ``day`` and schedule what the customers do about them.

        Writes one contacts row per decision (channel ``none`` for doing nothing) and draws the
        response of every message (delivery, opens, clicks, conversions, unsubscribes,
        complaints) from the same probabilities the ground truth uses. Returns the contact ids.
        """
        self._check_day(day)
        self._prepare()
        obj = get_objective(objective)
        idx = np.asarray(customer_idx, dtype=np.int64)
        at = np.asarray(ts, dtype=float)
        self._check_moments(idx, at)
        n = len(idx)
        if len(action_keys) != n or len(decision_ids) != n:
            raise InvalidInput(
                f"{n} moments but {len(action_keys)} action_keys and {len(decision_ids)} decision_ids"
            )
        p = np.full(n, np.nan) if propensities is None else np.asarray(propensities, dtype=float)
        if p.shape != (n,):
            raise InvalidInput(f"propensities has shape {p.shape}, expected ({n},)")
        if n and at.max() >= self.day_start(day) + DAY:
            raise InvalidInput(f"ts: decisions of day {day} must be taken during that day")
        if n and np.isfinite(self.state.cancel_at[idx]).any():
            raise InvalidInput("customer_idx: a customer who cancelled cannot be decided for")
        channel, slot = action_codes(action_keys)
        values, exp = self._values(idx, at, channel, slot, obj)
        number = self._next_contact + np.arange(n)
        self._next_contact += n
        category = -1 if obj.promoted_category is None else CATEGORIES.index(obj.promoted_category)
        self.contact_log.add(
            contact=number, cust=idx, ts=at, channel=channel, slot=slot, send=exp.send,
            objective=np.full(n, obj.name, dtype=object), cost=CHANNEL_COSTS[channel],
            propensity=p, decision=np.asarray(decision_ids, dtype=object),
            category=np.where(channel == NONE_CODE, -1, category),
        )  # fmt: skip
        contact = channel != NONE_CODE
        self.state.pending.add(
            cust=idx[contact], send=exp.send[contact],
            weight=CHANNEL_WEIGHTS[channel[contact]] * exp.deliverable[contact],
            channel=channel[contact],
        )  # fmt: skip
        rng = self._rng(_STREAM_RESPONSES, day, self._applied)
        self._applied += 1
        draw_responses(
            self.world,
            self.state,
            obj,
            rng,
            idx=idx,
            ts=at,
            channel=channel,
            number=number,
            exp=exp,
        )
        return format_ids("ct", number, 9)

    def last_contacts(self, customer_idx: np.ndarray, ts: np.ndarray):
        """What a rule-based campaign sees: see :meth:`WorldState.last_contacts`."""
        return self.state.last_contacts(np.asarray(customer_idx, dtype=np.int64),
                                        np.asarray(ts, dtype=float))  # fmt: skip

    def history(self, *, policy: str = "", objective: str = "") -> SimulatedHistory:
        """The tables written so far, as a :class:`SimulatedHistory`."""
        return build_history(self, policy=policy, objective=objective)


def action_codes(keys: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channel and slot codes of action keys such as ``email@today_evening`` or ``none``."""
    codes: dict[str, tuple[int, int]] = {}
    for key in dict.fromkeys(keys):
        try:
            action = Action.from_key(str(key))
        except ValueError:
            raise InvalidInput(f"action_keys: {key!r} is not an action") from None
        codes[key] = (CHANNELS.index(action.channel), SLOT_CODES[action.slot])
    if not codes:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    pairs = np.array([codes[k] for k in keys], dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]
