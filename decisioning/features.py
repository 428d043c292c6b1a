"""Features of a customer at a moment, and of an action for that customer.

One function for training and serving: ``customer_features(state, now)`` reads only the state,
which holds only what happened before ``now``. Names here are also the behavioural fields a
segment expression may use (``tenure_days < 90``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np

from decisioning.actions import Action, send_at, zone
from decisioning.channels import CONSENT_CHANNELS, CONTACT_CHANNELS
from decisioning.customer_view import CustomerState
from decisioning.fatigue import DAY
from decisioning.identity_cache import IdentityCache

_CAP_DAYS = 365.0
_CHANNELS = tuple(c.value for c in CONTACT_CHANNELS)
_CONSENTS = tuple(c.value for c in CONSENT_CHANNELS)
#: what is counted per channel, in the order models see it
_CHANNEL_FIGURES = (
    "contacts_24h", "contacts_7d", "contacts_30d", "open_rate", "click_rate",
    "days_since_contact", "days_since_open",
)  # fmt: skip
#: the feature names of each consent and each channel, formatted once
_CONSENT_KEYS = tuple((c, f"consent_{c}") for c in _CONSENTS)
_CHANNEL_FEATURE_NAMES = tuple(
    (ch, *(f"{ch}_{name}" for name in _CHANNEL_FIGURES)) for ch in _CHANNELS
)


#: behavioural features, in the order models see them
BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "known",
    "tenure_days",
    "recency_days",
    "frequency",
    "monetary",
    "purchases_30d",
    "days_since_event",
    "activity",
    "app_opens",
    "web_visits",
    "contacts_24h",
    "contacts_7d",
    "contacts_30d",
    "pressure",
    "ticket_open",
    "complaints",
    "unsubscribes",
    "days_since_owned_contact",
    "owned_unopened",
    "preferred_hour",
    "local_hour",
    "weekday",
    "spend",
    *(key for _, key in _CONSENT_KEYS),
    *(name for _, *names in _CHANNEL_FEATURE_NAMES for name in names),
)

#: features of an action for a customer (the action-dependent half of a bandit example)
ACTION_FEATURES: tuple[str, ...] = (
    "is_contact",
    "send_delay_hours",
    "send_hour",
    "send_weekend",
    "hour_affinity",
    "channel_open_rate",
    "channel_click_rate",
    "channel_contacts_7d",
    "channel_days_since_open",
)


def _days(now: float, then: float | None) -> float:
    if then is None:
        return _CAP_DAYS
    return min(_CAP_DAYS, max(0.0, (now - then) / DAY))


#: a channel's open and click rates are shrunk towards a prior (10% and 2%) when few messages
#: were sent: ``(hits + prior * strength) / (contacts + strength)``
_STRENGTH = 2.0
_OPEN_PRIOR, _CLICK_PRIOR = 0.1 * _STRENGTH, 0.02 * _STRENGTH


@lru_cache(maxsize=4096)
def _hour_and_weekday(timezone: str, now: float) -> tuple[float, float]:
    """The local hour and weekday at ``now`` in ``timezone`` (shared by a batch's customers)."""
    local = datetime.fromtimestamp(now, zone(timezone))
    return float(local.hour), float(local.weekday())


def customer_features(state: CustomerState, now: float) -> dict[str, float]:
    """The behavioural features of ``state`` as seen at epoch time ``now``."""
    day_ago, week_ago, month_ago = now - DAY, now - 7 * DAY, now - 30 * DAY
    local_hour, weekday = _hour_and_weekday(state.timezone, now)
    counts = state.hour_counts
    preferred = float(counts.index(max(counts))) if sum(counts) else -1.0  # the first busiest
    f: dict[str, float] = {
        "known": 1.0 if state.known else 0.0,
        "tenure_days": _days(now, state.signup_at) if state.signup_at is not None else 0.0,
        "recency_days": _days(now, state.last_purchase),
        "frequency": float(state.purchases),
        "monetary": float(state.monetary),
        "purchases_30d": float(sum(1 for t, _ in state.recent_purchases if t > month_ago)),
        "days_since_event": _days(now, state.last_event),
        "activity": state.activity.value_at(now),
        "app_opens": float(state.app_opens),
        "web_visits": float(state.web_visits),
        "contacts_24h": 0.0,
        "contacts_7d": 0.0,
        "contacts_30d": 0.0,
        "pressure": state.pressure.value_at(now),
        "ticket_open": 1.0 if state.open_tickets > 0 else 0.0,
        "complaints": float(state.complaints),
        "unsubscribes": float(state.unsubscribes),
        "days_since_owned_contact": _days(now, state.last_owned_contact),
        "owned_unopened": 1.0 if _owned_unopened(state) else 0.0,
        "preferred_hour": preferred,
        "local_hour": local_hour,
        "weekday": weekday,
        "spend": float(state.spend),
    }
    consents = state.consents
    for c, key in _CONSENT_KEYS:
        f[key] = 1.0 if consents.get(c) else 0.0
    channels = state.channels
    all_d = all_w = all_m = 0
    for ch, k24, k7, k30, k_open, k_click, k_contact, k_opened in _CHANNEL_FEATURE_NAMES:
        s = channels[ch]
        d = w = m = 0
        for t in s.recent:
            if t > month_ago:
                m += 1
                if t > week_ago:
                    w += 1
                    if t > day_ago:
                        d += 1
        f[k24] = float(d)
        f[k7] = float(w)
        f[k30] = float(m)
        all_d, all_w, all_m = all_d + d, all_w + w, all_m + m
        # the shrunk rates, and _days written out: this runs for every channel of every customer
        trials = s.contacts + _STRENGTH
        f[k_open] = (s.opens + _OPEN_PRIOR) / trials
        f[k_click] = (s.clicks + _CLICK_PRIOR) / trials
        then = s.last_contact
        if then is None:
            f[k_contact] = _CAP_DAYS
        else:
            days = (now - then) / DAY
            f[k_contact] = (days if days < _CAP_DAYS else _CAP_DAYS) if days > 0.0 else 0.0
        then = s.last_open
        if then is None:
            f[k_opened] = _CAP_DAYS
        else:
            days = (now - then) / DAY
            f[k_opened] = (days if days < _CAP_DAYS else _CAP_DAYS) if days > 0.0 else 0.0
    f["contacts_24h"], f["contacts_7d"], f["contacts_30d"] = (
        float(all_d),
        float(all_w),
        float(all_m),
    )
    return f


def _owned_unopened(state: CustomerState) -> bool:
    last = state.last_owned_contact
    response = state.last_owned_response
    return last is not None and (response is None or response < last)


def hour_affinity(state: CustomerState, hour: int) -> float:
    """Share of the customer's activity within an hour of ``hour`` (0.125 when nothing is known)."""
    return _affinity(state.hour_counts, sum(state.hour_counts), hour)


def _affinity(counts: Sequence[int], total: int, hour: int) -> float:
    """:func:`hour_affinity` from the customer's hourly ``counts`` and their ``total``."""
    if total == 0:
        return 3 / 24
    return (counts[(hour - 1) % 24] + counts[hour] + counts[(hour + 1) % 24]) / total


def action_features(
    state: CustomerState,
    action: Action,
    now: float,
    customer: dict[str, float] | None = None,
    *,
    send_ts: float | None = None,
) -> dict[str, float]:
    """Features of ``action`` for this customer at ``now`` (zeros for doing nothing).

    ``send_ts`` is when the action would really go out (after quiet-hours deferral); by default
    the slot's own time.
    """
    if action.is_nothing:
        return dict.fromkeys(ACTION_FEATURES, 0.0)
    c = customer if customer is not None else customer_features(state, now)
    if send_ts is None:
        moment = datetime.fromtimestamp(now, zone("UTC"))
        send_ts = send_at(action.slot, moment, state.timezone).timestamp()
    local = datetime.fromtimestamp(send_ts, zone(state.timezone))
    return _action_row(action.channel.value, c, state, send_ts - now, local.hour, local.weekday())


def _action_row(
    ch: str, c: dict[str, float], state: CustomerState, delay: float, hour: int, weekday: int
) -> dict[str, float]:
    return {
        "is_contact": 1.0,
        "send_delay_hours": delay / 3600.0,
        "send_hour": float(hour),
        "send_weekend": 1.0 if weekday >= 5 else 0.0,
        "hour_affinity": hour_affinity(state, hour),
        "channel_open_rate": c[f"{ch}_open_rate"],
        "channel_click_rate": c[f"{ch}_click_rate"],
        "channel_contacts_7d": c[f"{ch}_contacts_7d"],
        "channel_days_since_open": c[f"{ch}_days_since_open"],
    }


def action_feature_matrix(
    state: CustomerState,
    actions: Sequence[Action],
    now: float,
    customer: dict[str, float],
    send_times: Sequence[float] | np.ndarray,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """Features of every action as a (len(actions), len(ACTION_FEATURES)) array.

    Row i equals ``action_features(state, actions[i], now, customer, send_ts=send_times[i])``;
    the timing columns are worked out once per distinct send time and the per-channel figures
    once per channel, then spread over the actions with numpy (one call decides one customer:
    few numpy calls, as each costs more than the arithmetic).

    With ``eligible`` (the contact policy's mask), the rows of the actions it blocks are zeros:
    no policy scores a blocked action, so their features are not worked out. Most decisions
    allow doing nothing alone, and then every row is zero.
    """
    channel_of, channels, nothing, contacts = _channel_layout(actions)
    times = np.asarray(send_times, dtype=np.float64)
    if times.shape != (len(channel_of),):
        raise ValueError(f"send_times has shape {times.shape}, expected ({len(channel_of)},)")
    if eligible is None:
        return _one_matrix(state, channel_of, channels, nothing, now, customer, times)
    blocked = _blocked_mask(eligible, times.shape)
    if blocked[contacts].all():  # no contact allowed
        return np.zeros((len(channel_of), len(ACTION_FEATURES)), dtype=np.float64)
    out = _one_matrix(state, channel_of, channels, nothing, now, customer, times)
    out[blocked] = 0.0
    return out


def _one_matrix(
    state: CustomerState,
    channel_of: np.ndarray,
    channels: tuple[str, ...],
    nothing: np.ndarray,
    now: float,
    customer: dict[str, float],
    times: np.ndarray,
) -> np.ndarray:
    """:func:`action_feature_matrix` of every action, from the action space's layout."""
    tz_name, counts = state.timezone, state.hour_counts
    total = sum(counts)
    position: dict[float, int] = {}
    where = [position.setdefault(ts, len(position)) for ts in times.tolist()]
    timing = []  # is_contact, send_delay_hours, send_hour, send_weekend, hour_affinity
    for ts in position:
        # the slots' times recur across customers of a zone; "now" is new on every call
        hour, weekend = _local_clock(tz_name, ts) if ts == now else _kept_clock(tz_name, ts)
        affinity = _affinity(counts, total, hour)
        timing.append((1.0, (ts - now) / 3600.0, float(hour), weekend, affinity))
    figures = np.array(_channel_figures(customer, channels), dtype=np.float64)
    out = np.concatenate((np.array(timing)[where], figures[channel_of]), axis=1)
    out[nothing] = 0.0
    return out


_LOCAL_CLOCKS: dict[tuple[str, float], tuple[int, float]] = {}


def _local_clock(tz_name: str, ts: float) -> tuple[int, float]:
    """The local hour at ``ts`` in the zone, and 1.0 on a weekend (else 0.0)."""
    local = datetime.fromtimestamp(ts, zone(tz_name))
    return local.hour, 1.0 if local.weekday() >= 5 else 0.0


def _kept_clock(tz_name: str, ts: float) -> tuple[int, float]:
    """:func:`_local_clock`, kept: the scheduled slots of a zone send at the same few times."""
    key = (tz_name, ts)
    hit = _LOCAL_CLOCKS.get(key)
    if hit is None:
        if len(_LOCAL_CLOCKS) >= 16384:
            _LOCAL_CLOCKS.clear()
        hit = _LOCAL_CLOCKS[key] = _local_clock(tz_name, ts)
    return hit


def action_feature_matrices(
    states: Sequence[CustomerState],
    actions: Sequence[Action],
    now: float,
    customers: Sequence[dict[str, float]],
    send_times: np.ndarray,
    eligible: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`action_feature_matrix` of many customers at once: (n, len(actions), n_features).

    ``send_times`` is (n, len(actions)), and so is ``eligible`` when given (the rows of blocked
    actions are then zeros, and the customers allowed no contact cost nothing). Local hours are
    worked out once per time zone and distinct send time (slots fall on the same local hours
    for everyone in a zone), hour affinities and per-channel figures with numpy over the whole
    chunk.
    """
    channel_of, channels, nothing, contacts = _channel_layout(actions)
    n, a = len(states), len(channel_of)
    times = np.asarray(send_times, dtype=np.float64)
    if times.shape != (n, a) or len(customers) != n:
        raise ValueError(
            f"send_times has shape {times.shape} for {len(customers)} customers, expected ({n}, {a})"
        )
    if eligible is not None:
        blocked = _blocked_mask(eligible, times.shape)
        some = np.flatnonzero(~blocked[:, contacts].all(axis=1))
        out = np.zeros((n, a, len(ACTION_FEATURES)), dtype=np.float64)
        if len(some):
            out[some] = action_feature_matrices(
                [states[int(i)] for i in some],
                actions,
                now,
                [customers[int(i)] for i in some],
                times[some],
            )
            out[blocked] = 0.0
        return out
    zones: dict[str, list[int]] = {}
    for i, state in enumerate(states):
        zones.setdefault(state.timezone, []).append(i)
    hour = np.empty((n, a), dtype=np.intp)
    weekend = np.empty((n, a), dtype=np.float64)
    for name, rows in zones.items():
        tz = zone(name)
        part = times[rows]
        distinct, where = np.unique(part, return_inverse=True)
        local = [datetime.fromtimestamp(ts, tz) for ts in distinct.tolist()]
        where = where.reshape(part.shape)
        hour[rows] = np.array([t.hour for t in local], dtype=np.intp)[where]
        weekend[rows] = np.array([1.0 if t.weekday() >= 5 else 0.0 for t in local])[where]
    counts = np.array([s.hour_counts for s in states], dtype=np.int64).reshape(n, 24)
    total = counts.sum(axis=1)
    row = np.arange(n)[:, None]
    near = counts[row, (hour - 1) % 24] + counts[row, hour] + counts[row, (hour + 1) % 24]
    affinity = np.where(total[:, None] > 0, near / np.maximum(total, 1)[:, None], 3 / 24)
    figures = np.array(
        [_channel_figures(c, channels) for c in customers], dtype=np.float64
    ).reshape(n, len(channels) + 1, 4)
    return _assemble(times, now, hour, weekend, affinity, figures[:, channel_of], nothing)


def _blocked_mask(eligible: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The actions ``eligible`` leaves out, checked against the send times' ``shape``."""
    mask = np.asarray(eligible, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"eligible has shape {mask.shape}, expected {shape}")
    return ~mask


def _channel_figures(customer: dict[str, float], channels: tuple[str, ...]) -> list[tuple]:
    """The customer figures each channel's actions repeat, then zeros for doing nothing."""
    return [tuple(customer[k] for k in _CHANNEL_KEYS[ch]) for ch in channels] + [_NOTHING]


def _assemble(
    times: np.ndarray,
    now: float,
    hour: np.ndarray,
    weekend: np.ndarray,
    affinity: np.ndarray,
    figures: np.ndarray,
    nothing: np.ndarray,
) -> np.ndarray:
    """The features of actions whose send times are ``times`` (..., n_actions), from their
    local hour, weekend flag, hour affinity and channel ``figures`` (..., n_actions, 4);
    zeros at the positions ``nothing`` of doing nothing."""
    out = np.empty((*times.shape, len(ACTION_FEATURES)), dtype=np.float64)
    out[..., 0] = 1.0
    out[..., 1] = (times - now) / 3600.0
    out[..., 2] = hour
    out[..., 3] = weekend
    out[..., 4] = affinity
    out[..., 5:] = figures
    out[..., nothing, :] = 0.0
    return out


_NOTHING = (0.0, 0.0, 0.0, 0.0)
#: the customer features each channel's actions repeat, in ``ACTION_FEATURES`` order
_CHANNEL_KEYS = {
    ch: (f"{ch}_open_rate", f"{ch}_click_rate", f"{ch}_contacts_7d", f"{ch}_days_since_open")
    for ch in _CHANNELS
}
_Layout = tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray]
_LAYOUTS = IdentityCache[_Layout](limit=64)


def _channel_layout(actions: Sequence[Action]) -> _Layout:
    """Each action's channel as an index into the channels used (their count for doing
    nothing), those channels, the positions of doing nothing, and a mask of the contacts.

    Kept per action sequence (by identity: action spaces are built once and reused).
    """
    hit = _LAYOUTS.get(actions)
    if hit is not None:
        return hit
    channels = tuple(dict.fromkeys(a.channel.value for a in actions if not a.is_nothing))
    index = {ch: k for k, ch in enumerate(channels)}
    channel_of = np.array(
        [len(channels) if a.is_nothing else index[a.channel.value] for a in actions], dtype=np.intp
    )
    contacts = channel_of != len(channels)
    nothing = np.flatnonzero(~contacts)
    for array in (channel_of, nothing, contacts):
        array.setflags(write=False)
    return _LAYOUTS.put(actions, (channel_of, channels, nothing, contacts))


def attribute_features(state: CustomerState) -> dict[str, Any]:
    """The customer's own attributes (segment, plan, country, ...), as given in ``customers``."""
    return dict(state.attributes)
