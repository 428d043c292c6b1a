"""The store's in-process view of hot data: customer states and scheduled sends, read through.

Deciding reads a customer's state and scheduled sends for every request; reading them from
the database each time costs more than the decision itself. A store opened with
``hot=True`` keeps them in memory:

* an entry is loaded from the database on first use (or all at once by ``warm_states``) and
  served from memory afterwards;
* every write this process makes to a customer (ingested events and contacts, customer
  records, bulk loads) drops the customer's entry before and again after the write
  transaction commits, so the very next read sees the write; every decision this process logs
  is added to its customer's scheduled sends at once, and every status change drops them;
* writes by *other* processes are seen once an entry is older than ``ttl`` seconds.

A load that raced with a write (the generation moved while the database was read) is
returned but not kept, so a stale state never stays in memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")


class ReadThrough(Generic[V]):
    """Values by key, loaded from the database on a miss, dropped when the key is written.

    ``None`` values are kept too (an id the database does not know is a miss only once).
    """

    def __init__(self, *, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._lock = threading.Lock()
        self._values: dict[str, tuple[V | None, float]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._values)

    def get_many(
        self, keys: Iterable[str], load: Callable[[list[str]], Mapping[str, V]]
    ) -> dict[str, V | None]:
        """The value of every key (``None``: unknown), loading the missing ones with ``load``."""
        now = self.clock()
        out: dict[str, V | None] = {}
        missing: list[str] = []
        values, oldest = self._values, now - self.ttl
        for key in keys:
            hit = values.get(key)
            if hit is not None and hit[1] >= oldest:
                out[key] = hit[0]
            else:
                missing.append(key)
        if missing:
            generation = self._generation
            loaded = load(missing)
            fresh = {key: loaded.get(key) for key in missing}
            out.update(fresh)
            self._keep(fresh, generation, now)
        return out

    def _keep(self, fresh: Mapping[str, V | None], generation: int, now: float) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a write happened while loading: what was read may already be stale
            values = self._values
            overflow = len(values) + len(fresh) - self.max_entries
            if overflow > 0:  # drop the oldest entries (dicts keep insertion order)
                for key in list(values)[:overflow]:
                    del values[key]
            for key, value in fresh.items():
                values[key] = (value, now)

    def update(self, key: str, change: Callable[[V | None], V | None]) -> None:
        """Apply ``change`` to a kept value (nothing if the key is not kept)."""
        with self._lock:
            self._generation += 1
            hit = self._values.get(key)
            if hit is not None:
                self._values[key] = (change(hit[0]), hit[1])

    def drop(self, keys: Iterable[str]) -> None:
        """Forget these keys: the next read goes to the database."""
        with self._lock:
            self._generation += 1
            for key in keys:
                self._values.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._generation += 1
            self._values.clear()


def monotonic() -> float:
    return time.monotonic()
