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
* writes by *other* processes are seen once an entry is older than ``ttl`` seconds. An entry
  read when past half its ``ttl`` is reloaded ahead of expiry by a background thread, in pages
  of many customers (one query per page, far cheaper than one per request), so the customers
  served steadily never fall back to reads on the request path.

A key written while it was being loaded (dropped, updated, or the cache cleared) is returned
but not kept, so a stale state never stays in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

V = TypeVar("V")
log = logging.getLogger("decisioning.store")


class _Load:
    """A load in flight: the keys written meanwhile (``everything``: the cache was cleared)."""

    __slots__ = ("dirty", "everything")

    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.everything = False


class ReadThrough(Generic[V]):
    """Values by key, loaded from the database on a miss, dropped when the key is written.

    ``None`` values are kept too (an id the database does not know is a miss only once).
    ``refresh_after`` (a share of ``ttl``; None: never) is the age from which a read entry is
    reloaded in the background, ``page`` keys per load.
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entries: int,
        clock: Callable[[], float],
        refresh_after: float | None = 0.5,
        page: int = 256,
    ) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self.refresh_after, self.page = refresh_after, page
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._values: dict[str, tuple[V | None, float]] = {}
        self._loads: list[_Load] = []
        self._stale: dict[str, Callable[[list[str]], Mapping[str, V]]] = {}
        self._refresher: threading.Thread | None = None
        self.refreshed = 0  # keys reloaded ahead of expiry

    def __len__(self) -> int:
        return len(self._values)

    def get_many(
        self, keys: Iterable[str], load: Callable[[list[str]], Mapping[str, V]]
    ) -> dict[str, V | None]:
        """The value of every key (``None``: unknown), loading the missing ones with ``load``."""
        now = self.clock()
        out: dict[str, V | None] = {}
        missing: list[str] = []
        stale: list[str] = []
        values, oldest = self._values, now - self.ttl
        # past ``soft``: served, and reloaded in the background (never, without refresh_after)
        soft = oldest if self.refresh_after is None else now - self.ttl * self.refresh_after
        for key in keys:
            hit = values.get(key)
            if hit is not None and hit[1] >= oldest:
                out[key] = hit[0]
                if hit[1] < soft:
                    stale.append(key)
            else:
                missing.append(key)
        if missing:
            out.update(self._load(missing, load, now))
        if stale:
            self._schedule(stale, load)
        return out

    def _load(
        self, keys: list[str], load: Callable[[list[str]], Mapping[str, V]], now: float
    ) -> dict[str, V | None]:
        """Load ``keys`` and keep those not written meanwhile (as of ``now``)."""
        token = _Load()
        with self._lock:
            self._loads.append(token)
        try:
            loaded = load(keys)
        finally:
            with self._lock:
                self._loads.remove(token)
        fresh = {key: loaded.get(key) for key in keys}
        self._keep(fresh, token, now)
        return fresh

    def _keep(self, fresh: Mapping[str, V | None], token: _Load, now: float) -> None:
        with self._lock:
            if token.everything:
                return  # the cache was cleared while loading
            values = self._values
            keep = [(k, v) for k, v in fresh.items() if k not in token.dirty]
            overflow = len(values) + len(keep) - self.max_entries
            if overflow > 0:  # drop the oldest entries (dicts keep insertion order)
                for key in list(values)[:overflow]:
                    del values[key]
            for key, value in keep:
                values.pop(key, None)  # re-inserted: the newest at the end
                values[key] = (value, now)

    def _written(self, keys: Iterable[str]) -> None:
        for token in self._loads:
            token.dirty.update(keys)

    def update(self, key: str, change: Callable[[V | None], V | None]) -> None:
        """Apply ``change`` to a kept value (nothing if the key is not kept)."""
        with self._lock:
            self._written((key,))
            hit = self._values.get(key)
            if hit is not None:
                self._values[key] = (change(hit[0]), hit[1])

    def drop(self, keys: Iterable[str]) -> None:
        """Forget these keys: the next read goes to the database."""
        keys = list(keys)
        with self._lock:
            self._written(keys)
            for key in keys:
                self._values.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            for token in self._loads:
                token.everything = True
            self._values.clear()
            self._stale.clear()

    # -- reloading ahead of expiry --------------------------------------------------------------

    def _schedule(self, keys: list[str], load: Callable[[list[str]], Mapping[str, V]]) -> None:
        with self._lock:
            for key in keys:
                self._stale[key] = load
            if self._refresher is None:
                self._refresher = threading.Thread(
                    target=self._refresh_loop, name="hot-store-refresh", daemon=True
                )
                self._refresher.start()
            else:
                self._wake.notify()

    def refresh(self) -> int:
        """Reload one page of the entries read past ``refresh_after``; how many were reloaded."""
        with self._lock:
            if not self._stale:
                return 0
            load = next(iter(self._stale.values()))
            # bound methods are made anew at each look-up: equal, not identical
            keys = [k for k, f in self._stale.items() if f == load][: self.page]
            for key in keys:
                del self._stale[key]
        self._load(keys, load, self.clock())
        self.refreshed += len(keys)
        return len(keys)

    def stop_refreshing(self, timeout: float = 5.0) -> None:
        """Drop the reloads not started yet and wait for the one in flight (at close)."""
        with self._lock:
            self._stale.clear()
            thread = self._refresher
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _refresh_loop(self, idle: float = 5.0) -> None:
        """The background reloads; the thread ends after ``idle`` seconds with nothing to do."""
        while True:
            with self._lock:
                if not self._stale:
                    self._wake.wait(idle)
                if not self._stale:
                    self._refresher = None
                    return
            try:
                self.refresh()
            except Exception:  # the entries expire and are read on the request path instead
                log.exception("hot store: reloading entries ahead of expiry failed")
                time.sleep(1.0)
            time.sleep(0)  # let the serving thread in between pages


def monotonic() -> float:
    return time.monotonic()
