"""The action space: channel x timing slot, plus doing nothing, and when each slot sends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from decisioning.channels import CONTACT_CHANNELS, Channel


class Slot(StrEnum):
    """When to send, in the customer's local time."""

    NOW = "now"
    TODAY_NOON = "today_noon"
    TODAY_EVENING = "today_evening"
    TOMORROW_MORNING = "tomorrow_morning"
    TOMORROW_EVENING = "tomorrow_evening"
    WEEKEND_MORNING = "weekend_morning"


ALL_SLOTS: tuple[Slot, ...] = tuple(Slot)

#: Local clock time (hour) that each scheduled slot sends at.
SLOT_HOUR: dict[Slot, int] = {
    Slot.TODAY_NOON: 12,
    Slot.TODAY_EVENING: 19,
    Slot.TOMORROW_MORNING: 9,
    Slot.TOMORROW_EVENING: 19,
    Slot.WEEKEND_MORNING: 10,
}


@dataclass(frozen=True, slots=True)
class Action:
    """One thing the service can do: contact on a channel at a slot, or nothing."""

    channel: Channel
    slot: Slot = Slot.NOW

    @property
    def is_nothing(self) -> bool:
        return self.channel is Channel.NONE

    @property
    def key(self) -> str:
        """Stable name, e.g. ``email@today_evening`` or ``none``."""
        return _KEYS[self.channel][self.slot]  # read on every decision: formatted once

    @classmethod
    def from_key(cls, key: str) -> Action:
        if key == "none":
            return DO_NOTHING
        channel, _, slot = key.partition("@")
        return cls(Channel(channel), Slot(slot or "now"))

    def __str__(self) -> str:
        return self.key


DO_NOTHING = Action(Channel.NONE, Slot.NOW)
_KEYS: dict[Channel, dict[Slot, str]] = {
    channel: {
        slot: "none" if channel is Channel.NONE else f"{channel.value}@{slot.value}"
        for slot in Slot
    }
    for channel in Channel
}


@dataclass(frozen=True, slots=True)
class ActionSpace:
    """An ordered set of actions; index 0 is always doing nothing."""

    actions: tuple[Action, ...]
    #: the actions' keys, worked out once (read on every decision)
    _keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.actions or self.actions[0] != DO_NOTHING:
            raise ValueError("an action space starts with the do-nothing action")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError("an action space lists each action once")
        object.__setattr__(self, "_keys", tuple(a.key for a in self.actions))

    @classmethod
    def build(
        cls,
        channels: Iterable[Channel | str] = CONTACT_CHANNELS,
        slots: Iterable[Slot | str] = ALL_SLOTS,
    ) -> ActionSpace:
        chans = [Channel(c) for c in channels if Channel(c) is not Channel.NONE]
        slot_list = [Slot(s) for s in slots]
        return cls((DO_NOTHING, *(Action(c, s) for c in chans for s in slot_list)))

    def __len__(self) -> int:
        return len(self.actions)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.actions)

    def __getitem__(self, i: int) -> Action:
        return self.actions[i]

    @property
    def keys(self) -> tuple[str, ...]:
        try:
            return self._keys
        except AttributeError:  # an action space pickled before the keys were kept
            return _keys_of(self.actions)

    def index(self, action: Action | str) -> int:
        key = action if isinstance(action, str) else action.key
        try:
            return self._index()[key]
        except KeyError:
            raise ValueError(f"action {key!r} is not in this action space") from None

    def _index(self) -> dict[str, int]:
        return _index_of(self.actions)

    @property
    def channels(self) -> tuple[Channel, ...]:
        return tuple(dict.fromkeys(a.channel for a in self.actions if not a.is_nothing))


@lru_cache(maxsize=64)
def _keys_of(actions: Sequence[Action]) -> tuple[str, ...]:
    return tuple(a.key for a in actions)


@lru_cache(maxsize=64)
def _index_of(actions: Sequence[Action]) -> dict[str, int]:
    return {a.key: i for i, a in enumerate(actions)}


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (cached: looked up on every decision)."""
    return ZoneInfo(name)


def send_at(slot: Slot, now: datetime, timezone: str) -> datetime:
    """The concrete UTC-aware time a slot sends at, for a decision taken at ``now``.

    ``today_*`` slots roll over to the next day once their hour has passed; ``weekend_morning``
    is the next Saturday (or Sunday) morning that is still ahead.
    """
    if now.tzinfo is None:
        raise ValueError("decision time must be timezone-aware")
    if slot is Slot.NOW:
        return now
    local = now.astimezone(zone(timezone))
    hour = SLOT_HOUR[slot]
    day = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if slot in (Slot.TODAY_NOON, Slot.TODAY_EVENING):
        target = day if day > local else day + timedelta(days=1)
    elif slot is Slot.TOMORROW_MORNING or slot is Slot.TOMORROW_EVENING:
        target = day + timedelta(days=1)
    else:  # weekend morning
        target = day
        while target.weekday() < 5 or target <= local:
            target += timedelta(days=1)
    # Re-localise so a DST change between now and the target keeps the wall-clock hour.
    target = target.replace(tzinfo=None).replace(tzinfo=zone(timezone))
    return target.astimezone(now.tzinfo)
