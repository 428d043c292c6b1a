"""The guardrail audit: every message an arm sent, checked against the raw event and contact log.

The audit does not ask the service: it reads the world's own log (what customers did, what was
sent and when) and checks each message of the loop against the contact policy's rules, with
the events that happened before the message went out. A violation is a message that a rule
forbade at its send time:

* ``holdout``: sent to a customer held out of the objective;
* ``consent``: on an owned channel without the customer's consent (never given, or withdrawn);
* ``support_ticket``: while a support ticket was open (at the decision or at the send);
* ``quiet_hours``: inside the quiet hours, in the customer's time zone;
* ``contact_cap`` / ``channel_cap``: more messages in a cap window than the cap allows;
* ``waterfall``: paid media without an unanswered owned message at least the waiting time old;
* ``complaint``: paid media within the complaint period after a complaint;
* ``purchase_cooldown``: within the cooldown after a purchase.
"""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from decisioning.channels import CONSENT_CHANNELS, OWNED_CHANNELS, PAID_CHANNELS, Channel
from decisioning.contact_settings import ContactPolicySettings, parse_window
from decisioning.records import EventType
from experiments.simulator import Simulator
from experiments.simulator.organic import EVENT_CODE
from experiments.simulator.response import CHANNELS, NONE_CODE

HOUR = 3600.0
RULES: tuple[str, ...] = (
    "holdout", "consent", "support_ticket", "quiet_hours", "contact_cap", "channel_cap",
    "waterfall", "complaint", "purchase_cooldown",
)  # fmt: skip
_OWNED = [CHANNELS.index(c) for c in OWNED_CHANNELS]
_PAID = [CHANNELS.index(c) for c in PAID_CHANNELS]


def _keys(cust: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(customer, time) pairs as one sortable structured array."""
    out = np.empty(len(cust), dtype=[("c", np.int64), ("t", float)])
    out["c"], out["t"] = cust, ts
    return out


class _Timeline:
    """Times of one kind of row per customer, sorted, for counting rows in a time range."""

    def __init__(self, cust: np.ndarray, ts: np.ndarray) -> None:
        order = np.lexsort((ts, cust))
        self.keys = _keys(cust[order], ts[order])

    def count(self, cust: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, closed: str) -> np.ndarray:
        """Rows of each customer with time in ``(lo, hi]`` (closed="right") or ``[lo, hi)``."""
        side: Literal["left", "right"] = "right" if closed == "right" else "left"
        a = np.searchsorted(self.keys, _keys(cust, lo), side=side)
        b = np.searchsorted(self.keys, _keys(cust, hi), side=side)
        return np.asarray(b - a)

    def last_before(self, cust: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Time of each customer's latest row strictly before ``at`` (-inf if none)."""
        pos = np.asarray(np.searchsorted(self.keys, _keys(cust, at), side="left")) - 1
        ok = pos >= 0
        found = np.full(len(cust), -np.inf)
        same = ok.copy()
        same[ok] = self.keys["c"][pos[ok]] == cust[ok]
        found[same] = self.keys["t"][pos[same]]
        return found


def audit_sends(
    sim: Simulator,
    sends: pd.DataFrame,
    settings: ContactPolicySettings,
) -> dict[str, int]:
    """Violations per rule among ``sends`` (columns customer, decided_at, send_at, channel, holdout).

    ``sim`` is the world the messages were sent in: its event log gives what customers did, its
    contact log every message sent (the history's included, for the caps).
    """
    out = dict.fromkeys(RULES, 0)
    if sends.empty:
        return out
    cust = sends["customer"].to_numpy(np.int64)
    t = sends["send_at"].to_numpy(float)
    decided = sends["decided_at"].to_numpy(float)
    ch = np.array([CHANNELS.index(Channel(c)) for c in sends["channel"]], dtype=np.int64)
    ev = sim.event_log.data
    known = ~ev["anonymous"]
    ev_cust, ev_ts, ev_type = ev["cust"][known], ev["ts"][known], ev["type"][known]
    ev_ch = ev["channel"][known].astype(np.int64)

    def events_of(kind: EventType, channels: list[int] | None = None) -> _Timeline:
        mask = ev_type == EVENT_CODE[kind]
        if channels is not None:
            mask &= np.isin(ev_ch, channels)
        return _Timeline(ev_cust[mask], ev_ts[mask])

    out["holdout"] = int(sends["holdout"].to_numpy(bool).sum())
    out["consent"] = int(_no_consent(sim, cust, ch, t, ev_cust, ev_ts, ev_type, ev_ch).sum())
    opened = events_of(EventType.SUPPORT_TICKET_OPENED)
    closed = events_of(EventType.SUPPORT_TICKET_CLOSED)
    ticket = np.zeros(len(t), dtype=bool)
    for at in (decided, t):
        since = np.full(len(t), -np.inf)
        ticket |= opened.count(cust, since, at, closed="left") > closed.count(
            cust, since, at, closed="left"
        )
    out["support_ticket"] = int(ticket.sum())
    out["quiet_hours"] = int(_in_quiet_hours(sim, cust, t, settings).sum())

    contact = sim.contact_log.data
    sent = contact["channel"] != NONE_CODE
    all_cust, all_send = contact["cust"][sent], contact["send"][sent]
    all_ch = contact["channel"][sent].astype(np.int64)
    everything = _Timeline(all_cust, all_send)
    over = np.zeros(len(t), dtype=bool)
    for window, cap in settings.caps.items():
        seconds, _ = parse_window(window)
        over |= everything.count(cust, t - seconds, t, closed="right") > cap
    out["contact_cap"] = int(over.sum())
    over = np.zeros(len(t), dtype=bool)
    for channel, table in settings.channel_caps.items():
        code = CHANNELS.index(channel)
        mine = ch == code
        if not mine.any():
            continue
        timeline = _Timeline(all_cust[all_ch == code], all_send[all_ch == code])
        for window, cap in table.items():
            seconds, _ = parse_window(window)
            counts = timeline.count(cust[mine], t[mine] - seconds, t[mine], closed="right")
            over[np.flatnonzero(mine)[counts > cap]] = True
    out["channel_cap"] = int(over.sum())

    paid = np.isin(ch, _PAID)
    if settings.waterfall_hours is not None and paid.any():
        owned_sent = _Timeline(all_cust[np.isin(all_ch, _OWNED)], all_send[np.isin(all_ch, _OWNED)])
        last = owned_sent.last_before(cust[paid], t[paid])
        responses = _Timeline(
            *_cat(events_of(EventType.OPEN, _OWNED), events_of(EventType.CLICK, _OWNED))
        )
        answered = responses.count(cust[paid], np.where(np.isfinite(last), last, t[paid]),
                                   t[paid], closed="left") > 0  # fmt: skip
        too_soon = t[paid] - last < settings.waterfall_hours * HOUR
        out["waterfall"] = int((~np.isfinite(last) | answered | too_soon).sum())
        complaints = events_of(EventType.COMPLAINT)
        recent = complaints.count(
            cust[paid], t[paid] - settings.complaint_days * 86_400.0, t[paid], closed="left"
        )
        out["complaint"] = int((recent > 0).sum())
    if settings.purchase_cooldown_hours > 0:
        purchases = events_of(EventType.PURCHASE)
        cooldown = settings.purchase_cooldown_hours * HOUR
        recent = purchases.count(cust, t - cooldown, t, closed="left")
        out["purchase_cooldown"] = int((recent > 0).sum())
    return out


def _cat(*timelines: _Timeline) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.concatenate([tl.keys["c"] for tl in timelines]),
        np.concatenate([tl.keys["t"] for tl in timelines]),
    )


def _no_consent(
    sim: Simulator,
    cust: np.ndarray,
    ch: np.ndarray,
    t: np.ndarray,
    ev_cust: np.ndarray,
    ev_ts: np.ndarray,
    ev_type: np.ndarray,
    ev_ch: np.ndarray,
) -> np.ndarray:
    """Whether each owned-channel send went without the customer's consent at its send time."""
    out = np.zeros(len(t), dtype=bool)
    change = np.isin(ev_type, [EVENT_CODE[EventType.UNSUBSCRIBE], EVENT_CODE[EventType.SUBSCRIBE]])
    for i, channel in enumerate(CONSENT_CHANNELS):
        code = CHANNELS.index(channel)
        mine = ch == code
        if not mine.any():
            continue
        # an unsubscribe without a channel withdraws every consent
        rows = change & ((ev_ch == code) | (ev_ch < 0))
        unsub = rows & (ev_type == EVENT_CODE[EventType.UNSUBSCRIBE])
        last_unsub = _Timeline(ev_cust[unsub], ev_ts[unsub]).last_before(cust[mine], t[mine])
        sub = rows & (ev_type == EVENT_CODE[EventType.SUBSCRIBE])
        last_sub = _Timeline(ev_cust[sub], ev_ts[sub]).last_before(cust[mine], t[mine])
        given = sim.population.consent[cust[mine], i]
        consent = np.where(
            np.isfinite(last_unsub) | np.isfinite(last_sub), last_sub > last_unsub, given
        )
        out[np.flatnonzero(mine)] = ~consent
    return out


def _in_quiet_hours(
    sim: Simulator, cust: np.ndarray, t: np.ndarray, settings: ContactPolicySettings
) -> np.ndarray:
    """Whether each send time falls in the quiet hours of the customer's time zone."""
    if settings.quiet_hours is None:
        return np.zeros(len(t), dtype=bool)
    start, end = settings.quiet_hours
    lo = start.hour * HOUR + start.minute * 60
    hi = end.hour * HOUR + end.minute * 60
    zones = sim.population.tz[cust]
    clock = np.empty(len(t))
    for z in np.unique(zones):
        mine = zones == z
        local = pd.DatetimeIndex(pd.to_datetime(t[mine], unit="s", utc=True)).tz_convert(
            ZoneInfo(sim.world.timezones[z])
        )
        clock[mine] = local.hour * HOUR + local.minute * 60 + local.second
    return (clock >= lo) & (clock < hi) if lo < hi else (clock >= lo) | (clock < hi)
