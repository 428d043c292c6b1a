"""Quiet hours: when each slot's message may go out, in the customer's local time.

A message planned inside the quiet hours is deferred to their end (by the wall clock, so a
daylight-saving change keeps the local hour), or blocked when that is more than
``max_defer_hours`` away or the settings say ``quiet_hours_mode="block"``.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from decisioning.actions import ALL_SLOTS, Slot, send_at, zone
from decisioning.contact_settings import HOUR, ContactPolicySettings
from decisioning.guardrail_rules import span

_SCHEDULED_SLOTS = tuple(s for s in ALL_SLOTS if s is not Slot.NOW)


class QuietHours:
    """The send times the quiet hours of ``settings`` allow, cached per local hour."""

    def __init__(self, settings: ContactPolicySettings) -> None:
        self.settings = settings
        if settings.quiet_hours is None:
            self.window: tuple[float, float, time, str] | None = None
        else:
            start, end = settings.quiet_hours
            label = f"{start.strftime('%H:%M')}-{end.strftime('%H:%M')}"
            self.window = (_seconds(start), _seconds(end), end, label)
        self._slot_cache: dict[tuple[Any, ...], dict[Slot, tuple[float, str | None]]] = {}
        self._moment_cache: dict[tuple[str, float], dict[Slot, tuple[float, str | None]]] = {}

    @property
    def label(self) -> str | None:
        """The quiet hours as ``HH:MM-HH:MM`` (None without quiet hours)."""
        return None if self.window is None else self.window[3]

    def contains(self, at: float, timezone: str) -> bool:
        """Whether ``at`` falls in the quiet hours in ``timezone`` (False without quiet hours)."""
        if self.window is None:
            return False
        start, end = self.window[0], self.window[1]
        return _in_span(_clock(datetime.fromtimestamp(at, zone(timezone))), start, end)

    def schedule(self, timezone: str, now: float) -> dict[Slot, tuple[float, str | None]]:
        """Send time and quiet-hours verdict of every slot for a decision at ``now``.

        Kept per zone and moment, shared by the customers of a batch: read it, do not change it.
        """
        key = (timezone, now)
        hit = self._moment_cache.get(key)
        if hit is None:
            if len(self._moment_cache) >= 1024:
                self._moment_cache.clear()
            hit = self._moment_cache[key] = self._schedule(timezone, now)
        return hit

    def _schedule(self, timezone: str, now: float) -> dict[Slot, tuple[float, str | None]]:
        tz = zone(timezone)
        local = datetime.fromtimestamp(now, tz)
        # Scheduled slots depend only on the local date and hour (see actions.send_at): cache.
        key = (timezone, local.year, local.month, local.day, local.hour)
        cached = self._slot_cache.get(key)
        if cached is None:
            moment = datetime.fromtimestamp(now, UTC)
            cached = {
                slot: self.defer(send_at(slot, moment, timezone).timestamp(), tz)
                for slot in _SCHEDULED_SLOTS
            }
            if len(self._slot_cache) >= 4096:
                self._slot_cache.clear()
            self._slot_cache[key] = cached
        out = dict(cached)
        out[Slot.NOW] = self.defer(now, tz, local)
        return out

    def defer(
        self, at: float, tz: ZoneInfo, local: datetime | None = None
    ) -> tuple[float, str | None]:
        """The time a message planned for ``at`` may go, and why it may not when it may not."""
        if self.window is None:
            return at, None
        start, end, end_time, label = self.window
        local = local or datetime.fromtimestamp(at, tz)
        clock = _clock(local)
        if not _in_span(clock, start, end):
            return at, None
        if self.settings.quiet_hours_mode == "block":
            return at, f"send time falls in quiet hours ({label} local)"
        target = local.replace(
            hour=end_time.hour,
            minute=end_time.minute,
            second=end_time.second,
            microsecond=0,
            fold=0,
        )
        if clock >= end:
            target += timedelta(days=1)  # wall-clock arithmetic: DST keeps the local hour
        moved = target.timestamp()
        limit = self.settings.max_defer_hours
        if moved - at > limit * HOUR:
            return at, (
                f"quiet hours ({label} local): the next allowed time is {span(moved - at)} "
                f"away, more than the {limit:g}-hour limit"
            )
        return moved, None


def _seconds(moment: time) -> float:
    return moment.hour * HOUR + moment.minute * 60 + moment.second


def _in_span(clock: float, start: float, end: float) -> bool:
    return start <= clock < end if start < end else (clock >= start or clock < end)


def _clock(local: datetime) -> float:
    """Seconds since local midnight, by the wall clock."""
    return local.hour * HOUR + local.minute * 60 + local.second + local.microsecond / 1e6
