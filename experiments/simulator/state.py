"""The world's mutable state between days, and its point-in-time look-ups.

State folded at the end of each simulated day lives in arrays over customers; what is still to
come (events drawn but not yet written, contacts decided but not yet folded) lives in buffers.
Every look-up takes the moment it is asked about and sees only what happened before it, so the
ground truth at a decision moment never peeks at the day's later randomness.
"""

from __future__ import annotations

import numpy as np

from decisioning.channels import Channel
from decisioning.fatigue import FatigueSettings
from decisioning.records import EventType
from experiments.simulator.buffer import Columns, pairs
from experiments.simulator.objectives import CATEGORIES
from experiments.simulator.organic import EVENT_CODE, EVENT_DTYPES
from experiments.simulator.response import CHANNELS
from experiments.simulator.world import N_CONSENT, N_CONTACT, Population, WorldConfig

PENDING_DTYPES = {"cust": "i8", "send": "f8", "weight": "f8", "channel": "i1"}
#: how much one contact adds to the latent pressure, per channel code (nothing adds nothing)
CHANNEL_WEIGHTS = np.array(
    [
        FatigueSettings().channel_weights.get(c, 0.0) if c is not Channel.NONE else 0.0
        for c in CHANNELS
    ]
)
_PURCHASE = EVENT_CODE[EventType.PURCHASE]
_OPEN = EVENT_CODE[EventType.OPEN]


class WorldState:
    """Folded state of every customer as of ``now`` (a day boundary), plus pending buffers."""

    def __init__(self, world: WorldConfig, pop: Population, now: float) -> None:
        n = pop.size
        self.world = world
        self.now = now
        self.tau = world.fatigue_tau
        self.pressure = np.zeros(n)  # latent pressure, valued at ``now``
        self.last_buy = np.full((n, len(CATEGORIES)), -np.inf)
        self.last_sent = np.full((n, N_CONTACT), -np.inf)
        self.last_owned_open = np.full(n, -np.inf)
        # A consent holds while the time is before ``revoked_at``; never given: -inf.
        self.revoked_at = np.where(pop.consent, np.inf, -np.inf)
        self.cancel_at = np.full(n, np.inf)
        self.pending_cancel = np.full(n, np.inf)
        self.protect_from = np.full(n, np.inf)
        self.protect_until = np.full(n, -np.inf)
        self.ticket_open_at = np.full(n, -np.inf)
        self.ticket_close_at = np.full(n, -np.inf)
        self.events = Columns(EVENT_DTYPES)  # drawn, not yet written
        self.pending = Columns(PENDING_DTYPES)  # contacts decided, not yet folded

    # -- look-ups at a moment -------------------------------------------------------------------

    def pressure_at(self, idx: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Latent pressure of customers ``idx`` at times ``at`` (contacts sent before ``at``)."""
        out = self.pressure[idx] * np.exp(-(at - self.now) / self.tau)
        pend = self.pending.data
        q, b = pairs(pend["cust"], idx)
        before = pend["send"][b] < at[q]
        q, b = q[before], b[before]
        np.add.at(out, q, pend["weight"][b] * np.exp(-(at[q] - pend["send"][b]) / self.tau))
        return out

    def consent_at(self, idx: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Consents (n, 4) over the owned channels at times ``at``."""
        return self.revoked_at[idx] > at[:, None]

    def last_purchase_before(self, idx: np.ndarray, at: np.ndarray, category: int) -> np.ndarray:
        """Time of the last purchase of ``category`` (code) before ``at``, -inf if none."""
        out = self.last_buy[idx, category].copy()
        ev = self.events.data
        sel = (ev["type"] == _PURCHASE) & (ev["category"] == category)
        q, b = pairs(ev["cust"][sel], idx)
        ts = ev["ts"][sel][b]
        before = ts < at[q]
        np.maximum.at(out, q[before], ts[before])
        return out

    def ticket_known_open(self, idx: np.ndarray, at: np.ndarray, until: np.ndarray) -> np.ndarray:
        """Whether a ticket opened by ``at`` is still open at ``until``."""
        return (self.ticket_open_at[idx] <= at) & (self.ticket_close_at[idx] > until)

    def protected(self, idx: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Whether a retention contact has saved the customer at ``at`` (no cancel then)."""
        return (self.protect_from[idx] <= at) & (at <= self.protect_until[idx])

    def last_contacts(
        self, idx: np.ndarray, at: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What a rule-based campaign can see at ``at``.

        Returns the latest send time per contact channel of every contact decided so far
        (scheduled ones included), the last owned-channel send before ``at``, and the last
        owned-channel open before ``at``; -inf where there is none.
        """
        decided = self.last_sent[idx].copy()
        pend = self.pending.data
        q, b = pairs(pend["cust"], idx)
        ch = pend["channel"][b].astype(np.int64)
        np.maximum.at(decided, (q, ch), pend["send"][b])
        owned_sent = self.last_sent[idx, :N_CONSENT].max(axis=1)
        mine = (ch < N_CONSENT) & (pend["send"][b] < at[q])
        np.maximum.at(owned_sent, q[mine], pend["send"][b][mine])
        opened = self.last_owned_open[idx].copy()
        ev = self.events.data
        sel = (ev["type"] == _OPEN) & (ev["channel"] >= 0) & (ev["channel"] < N_CONSENT)
        q, b = pairs(ev["cust"][sel], idx)
        ts = ev["ts"][sel][b]
        before = ts < at[q]
        np.maximum.at(opened, q[before], ts[before])
        return decided, owned_sent, opened

    # -- updates --------------------------------------------------------------------------------

    def protect(self, idx: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
        """Save customers ``idx`` from cancelling between ``start`` and ``end``."""
        ok = end > start
        idx, start, end = idx[ok], start[ok], end[ok]
        new_from = np.full(len(self.protect_from), np.inf)
        new_until = np.full(len(self.protect_until), -np.inf)
        np.minimum.at(new_from, idx, start)
        np.maximum.at(new_until, idx, end)
        touched = np.isfinite(new_from)
        overlaps = touched & (self.protect_until >= new_from)
        self.protect_from = np.where(
            overlaps, np.minimum(self.protect_from, new_from),
            np.where(touched, new_from, self.protect_from),
        )  # fmt: skip
        self.protect_until = np.where(touched, np.maximum(self.protect_until, new_until),
                                      self.protect_until)  # fmt: skip

    def revoke(self, idx: np.ndarray, channel: np.ndarray, at: np.ndarray) -> None:
        """Withdraw the consent of owned ``channel`` (codes) from time ``at`` on."""
        owned = channel < N_CONSENT
        np.minimum.at(self.revoked_at, (idx[owned], channel[owned].astype(np.int64)), at[owned])

    def fold_contacts(self, end: float) -> None:
        """Fold the contacts sent before ``end`` into the pressure, and move ``now`` to ``end``."""
        pend = self.pending.pop(self.pending.data["send"] < end)
        cust, send, ch = pend["cust"], pend["send"], pend["channel"].astype(np.int64)
        weight = pend["weight"].copy()
        owned = ch < N_CONSENT
        # A message whose consent was withdrawn before it went out never reached the customer.
        weight[owned] *= self.revoked_at[cust[owned], ch[owned]] > send[owned]
        self.pressure *= np.exp(-(end - self.now) / self.tau)
        np.add.at(self.pressure, cust, weight * np.exp(-(end - send) / self.tau))
        np.maximum.at(self.last_sent, (cust, ch), send)
        self.now = end
        self.pending_cancel[:] = np.inf
