"""Writing the decision log behind the decisions: queued in memory, inserted in batches.

A decision is queued the moment it is decided and inserted by a background thread a few
milliseconds later, together with the decisions queued meanwhile, in one transaction. Nothing
is lost on the way:

* whatever reads the log (a decision by id, a status change, rewards, counts, exports,
  scheduled sends) flushes the queue first, in the caller's thread, so it sees every decision
  logged before it;
* a failed insert puts the batch back at the head of the queue and is retried;
* closing the store flushes, and so does the interpreter's exit for a store never closed.

Queued and in-flight rows stay visible (:meth:`DecisionLogWriter.unflushed`) until their
transaction has committed, so a reader never falls in the gap between queue and database.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("decisioning.store")

Row = dict[str, Any]

_open_writers: weakref.WeakSet[DecisionLogWriter] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:  # pragma: no cover - runs at interpreter exit
    for writer in list(_open_writers):
        try:
            writer.close()
        except Exception:
            log.exception("decision log: flush at exit failed")


class DecisionLogWriter:
    """Queues decision-log rows and inserts them in batches from a background thread.

    Parameters
    ----------
    write : callable
        Inserts a batch of rows in one transaction (raises on failure, inserting nothing).
    delay : float
        Seconds the thread waits after the first queued row, to gather a batch.
    release : callable, optional
        Called by :meth:`close` after the last flush, to free what ``write`` holds (such as
        an insert process); the next write must work again all the same.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Row]], Any],
        *,
        delay: float = 0.02,
        release: Callable[[], Any] | None = None,
    ) -> None:
        self._write = write
        self._release = release
        self.delay = delay
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._flushing = threading.Lock()  # one batch in flight at a time
        self._queue: list[Row] = []
        self._inflight: list[Row] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        _open_writers.add(self)

    def submit(self, rows: Sequence[Row]) -> None:
        """Queue rows for insertion (returns at once)."""
        if not rows:
            return
        with self._lock:
            self._queue.extend(rows)
            if self._thread is None:  # started on first use, again after a close
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="decision-log-writer", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def pending(self) -> int:
        """Rows queued or in flight, not yet committed."""
        with self._lock:
            return len(self._queue) + len(self._inflight)

    def unflushed(self) -> list[Row]:
        """Copies of the rows not yet committed (in flight first, then queued)."""
        with self._lock:
            return [*self._inflight, *self._queue]

    def flush(self) -> None:
        """Insert everything queued so far, in the caller's thread; raises if the insert fails."""
        while True:
            with self._flushing:
                with self._lock:
                    batch, self._queue = self._queue, []
                    self._inflight = batch
                if not batch:
                    return
                try:
                    self._write(batch)
                except BaseException:
                    with self._lock:
                        self._queue[:0] = batch  # retried first, order kept
                        self._inflight = []
                    raise
                with self._lock:
                    self._inflight = []
                    self.written += len(batch)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._lock:
                while not self._queue and not stop.is_set():
                    self._wake.wait()
            stop.wait(self.delay)  # gather a batch
            try:
                self.flush()
            except Exception:  # kept queued; retried after a pause, never dropped
                log.exception("decision log: batch insert failed, will retry")
                stop.wait(1.0)

    def close(self) -> None:
        """Stop the thread and flush what is queued (a later submit starts a new thread)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._wake.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self.flush()
        if self._release is not None:
            self._release()
