"""Local clock time of many customers at once, and vectorised send times of the timing slots.

The simulator keeps times as epoch seconds (float) in arrays over customers; this module turns
them into local hours and weekdays and reproduces :func:`decisioning.actions.send_at` without a
Python call per customer. UTC offsets come from a table of one offset per time zone and UTC hour,
which is exact for zones whose offsets change on whole UTC hours (every zone the default world
uses); the slot hours (9 to 19 local) never fall in a daylight-saving gap or overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from decisioning.actions import ALL_SLOTS, SLOT_HOUR, Slot

HOUR = 3_600.0
DAY = 86_400.0
_MARGIN_HOURS = 24 * 3

#: slot codes used in the simulator's arrays: the index of the slot in ``ALL_SLOTS``
SLOT_CODES: dict[Slot, int] = {s: i for i, s in enumerate(ALL_SLOTS)}
_NOW = SLOT_CODES[Slot.NOW]
_TODAY = {SLOT_CODES[Slot.TODAY_NOON], SLOT_CODES[Slot.TODAY_EVENING]}
_TOMORROW = {SLOT_CODES[Slot.TOMORROW_MORNING], SLOT_CODES[Slot.TOMORROW_EVENING]}
_WEEKEND = SLOT_CODES[Slot.WEEKEND_MORNING]


def weekday_of(local_seconds: np.ndarray) -> np.ndarray:
    """Weekday (Monday 0) of local wall-clock times given as seconds since 1970-01-01 local."""
    # 1970-01-01 was a Thursday (weekday 3).
    return ((np.floor(local_seconds / DAY).astype(np.int64) + 3) % 7).astype(np.int8)


class LocalClock:
    """UTC offsets of a fixed list of IANA time zones, looked up by zone code and time.

    Parameters
    ----------
    timezones : sequence of str
        IANA names; a customer's zone is given as its index in this list.
    """

    def __init__(self, timezones: Sequence[str]) -> None:
        self.timezones = tuple(timezones)
        self._base = 0.0
        self._table = np.zeros((len(self.timezones), 0))

    def _ensure(self, ts: np.ndarray) -> None:
        lo, hi = float(np.min(ts)), float(np.max(ts))
        n_hours = self._table.shape[1]
        if n_hours and lo >= self._base and hi < self._base + (n_hours - 1) * HOUR:
            return
        if n_hours:  # grow to cover both the old and the new range
            lo = min(lo, self._base)
            hi = max(hi, self._base + n_hours * HOUR)
        base = (np.floor(lo / HOUR) - _MARGIN_HOURS) * HOUR
        count = int((np.ceil(hi / HOUR) + _MARGIN_HOURS) - base / HOUR) + 1
        hours = pd.date_range(pd.Timestamp(base, unit="s", tz="UTC"), periods=count, freq="h")
        naive_utc = hours.tz_localize(None)
        table = np.empty((len(self.timezones), count))
        for code, name in enumerate(self.timezones):
            local = hours.tz_convert(name).tz_localize(None)
            table[code] = (local - naive_utc).total_seconds()
        self._base, self._table = base, table

    def offset(self, ts: np.ndarray, tz: np.ndarray) -> np.ndarray:
        """UTC offset in seconds of zone ``tz`` at epoch seconds ``ts`` (arrays of one shape)."""
        ts = np.asarray(ts, dtype=float)
        if ts.size == 0:
            return np.zeros_like(ts)
        self._ensure(ts)
        hour = ((ts - self._base) // HOUR).astype(np.int64)
        return self._table[np.asarray(tz, dtype=np.int64), hour]

    def local(self, ts: np.ndarray, tz: np.ndarray) -> np.ndarray:
        """Local wall-clock time as seconds since 1970-01-01 00:00 local."""
        return np.asarray(ts, dtype=float) + self.offset(ts, tz)

    def to_utc(self, local: np.ndarray, tz: np.ndarray) -> np.ndarray:
        """Epoch seconds of local wall-clock times (exact away from DST transitions)."""
        local = np.asarray(local, dtype=float)
        guess = local - self.offset(local, tz)
        return local - self.offset(guess, tz)

    def local_hour(self, ts: np.ndarray, tz: np.ndarray) -> np.ndarray:
        """Local hour of the day, as a float in [0, 24)."""
        return np.mod(self.local(ts, tz), DAY) / HOUR

    def send_times(
        self, slot: np.ndarray, ts: np.ndarray, tz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """When each slot sends, for decisions at ``ts``: (send epoch seconds, local hour as a
        float, weekday).

        Same rules as :func:`decisioning.actions.send_at`: ``today_*`` rolls over to the next day
        once its hour has passed, ``tomorrow_*`` is the next calendar day, ``weekend_morning`` the
        next Saturday or Sunday morning still ahead. ``slot`` holds :data:`SLOT_CODES` values.
        """
        slot = np.asarray(slot, dtype=np.int64)
        ts = np.asarray(ts, dtype=float)
        tz = np.asarray(tz, dtype=np.int64)
        local = self.local(ts, tz)
        midnight = np.floor(local / DAY) * DAY
        slot_hours = np.array([SLOT_HOUR.get(s, 0) for s in ALL_SLOTS], dtype=float)
        target = midnight + slot_hours[slot] * HOUR
        today = np.isin(slot, list(_TODAY))
        target = np.where(today & (target <= local), target + DAY, target)
        target = np.where(np.isin(slot, list(_TOMORROW)), target + DAY, target)
        weekend = slot == _WEEKEND
        if weekend.any():
            pending = weekend.copy()
            chosen = target.copy()
            for days in range(8):  # the next weekend morning is at most 7 days ahead
                candidate = target + days * DAY
                ok = pending & (weekday_of(candidate) >= 5) & (candidate > local)
                chosen = np.where(ok, candidate, chosen)
                pending &= ~ok
            target = chosen
        now = slot == _NOW
        send = np.where(now, ts, self.to_utc(target, tz))
        send_local = np.where(now, local, target)
        return send, np.mod(send_local, DAY) / HOUR, weekday_of(send_local)
