"""The customers being decided right now: two logged decisions for one customer never overlap.

A batch decides its chunks in a worker thread while single calls are decided on the event loop.
Each decision reads the customer's scheduled sends and logs its own contact after: two that
overlapped for one customer would each miss the other's contact (two messages, one voice
broken). So a chunk, or a call, claims its customers first, and a claim that meets a customer
claimed by another waits until that one's decision is logged, then reads it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class InFlight:
    """Claims on customers being decided; safe to share between threads.

    A claim is not re-entrant: the thread holding one must not claim those customers again.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._claimed: set[str] = set()
        self._waiting = 0  # claims waiting for another to end

    @contextmanager
    def claim(self, customer_ids: Sequence[str]) -> Iterator[None]:
        """Hold ``customer_ids`` (distinct) for the block, once no other claim holds any."""
        with self._changed:
            claimed = self._claimed
            while claimed and not claimed.isdisjoint(customer_ids):
                self._waiting += 1
                try:
                    self._changed.wait()
                finally:
                    self._waiting -= 1
            claimed.update(customer_ids)
        try:
            yield
        finally:
            with self._changed:
                self._claimed.difference_update(customer_ids)
                if self._waiting:
                    self._changed.notify_all()

    def __len__(self) -> int:
        """How many customers are claimed now."""
        return len(self._claimed)
