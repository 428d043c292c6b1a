"""Values worked out once per object, found by the object's identity.

For objects built once and reused on every decision (action spaces, feature specs, quiet-hours
schedules, a contact policy's shared blocked records) whose hash would cost as much as the
look-up saves, or that have none. Each entry holds its object, so the object's id cannot be
reused while the entry lives; the cache keeps at most ``limit`` entries and is emptied when full,
not grown.
"""

from __future__ import annotations

from typing import Generic, TypeVar

V = TypeVar("V")


class IdentityCache(Generic[V]):
    """``get(obj)`` gives what ``put(obj, value)`` stored for that very object, else None.

    Examples
    --------
    >>> cache = IdentityCache[str](limit=2)
    >>> mine, equal = ["email", "sms"], ["email", "sms"]
    >>> cache.put(mine, "two channels")
    'two channels'
    >>> cache.get(mine), cache.get(equal)
    ('two channels', None)
    """

    __slots__ = ("limit", "_entries")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: dict[int, tuple[object, V]] = {}

    def get(self, obj: object) -> V | None:
        hit = self._entries.get(id(obj))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, obj: object, value: V) -> V:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[id(obj)] = (obj, value)
        return value

    def __len__(self) -> int:
        return len(self._entries)
