"""Batch decisions split across processes: one engine per core for a large list of customers.

One Python process decides on one core. A batch split across ``processes`` forked processes,
each with its own engine (store connections, hot customer view, policies), decides on as many
cores. A customer is always decided by the same process (a stable hash of its id), so a
customer listed twice is decided twice, in order, by one engine that sees its first decision
(one voice, caps), as a single engine does. What the processes share goes through the store:
each logs its decisions to the one decision log, and budgets are paid from leases reserved in
the store (``serving.budget_leases``), exact across processes.

The processes send back each decision rendered (a line of text), and the lines come out in
the order of the input, as one engine writes them: a process's lines wait in the parent until
the lines listed before them have come (processes given equal shares decide at about the same
pace, so few wait).
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from decisioning.decision import Decision
from decisioning.errors import InvalidInput
from serving.engine import DecisionEngine

#: seconds between two looks at whether a silent process died
_POLL = 1.0


def process_of(customer_id: str, processes: int) -> int:
    """The process (0 to ``processes - 1``) that decides ``customer_id``, the same every run."""
    return zlib.crc32(customer_id.encode()) % processes


class ProcessBatch:
    """Decisions for ``customer_ids`` from ``processes`` processes; iterate for the lines.

    ``open_engine`` builds a process's engine; it runs in each forked process, after the fork
    (an engine's connections, threads and helper processes are never shared). ``prepare``, if
    given, runs first in a forked process of its own, before any engine is built: what the
    engines would otherwise race to create on a first start (an MLflow store's tables). The
    processes wait until every one has its engine, then decide together. ``render`` turns a
    decision into its line. Iterating yields lists of lines in the order of ``customer_ids``,
    as soon as the lines before them have come; a process that fails raises its error here,
    and the others are stopped.

    After the iteration, ``ready_s`` says how long the engines took to start and
    ``deciding_s`` how long the deciding took (from the moment all were ready).
    """

    def __init__(
        self,
        open_engine: Callable[[], DecisionEngine],
        customer_ids: Sequence[str],
        *,
        processes: int,
        render: Callable[[Decision], str],
        objective_id: str | None = None,
        as_of: datetime | None = None,
        chunk: int = 500,
        prepare: Callable[[], object] | None = None,
    ) -> None:
        if processes < 1:
            raise InvalidInput(f"processes: must be at least 1, got {processes}")
        if chunk < 1:
            raise InvalidInput(f"chunk: must be at least 1, got {chunk}")
        if "fork" not in mp.get_all_start_methods():
            raise InvalidInput("processes: deciding in several processes needs fork (Linux)")
        self.open_engine, self.render, self.prepare = open_engine, render, prepare
        self.objective_id, self.as_of, self.chunk = objective_id, as_of, chunk
        self.parts: list[list[str]] = [[] for _ in range(processes)]
        #: the process of each listed customer, in the order of the list
        self.owners: bytearray | list[int] = bytearray() if processes < 256 else []
        for cid in customer_ids:
            k = process_of(cid, processes)
            self.parts[k].append(cid)
            self.owners.append(k)
        self.ready_s: float | None = None
        self.deciding_s: float | None = None

    def __iter__(self) -> Iterator[list[str]]:
        context = mp.get_context("fork")
        answers = context.Queue()
        begun = time.perf_counter()
        if self.prepare is not None:
            self._prepare(context, answers)
        start_line = context.Barrier(len(self.parts))
        workers = [
            context.Process(target=self._work, args=(k, part, start_line, answers), daemon=True)
            for k, part in enumerate(self.parts)
        ]
        for worker in workers:
            worker.start()
        try:
            yield from self._collect(workers, answers, begun)
        finally:
            for worker in workers:
                if worker.is_alive():
                    worker.terminate()
                worker.join()

    def _prepare(self, context: Any, answers: Any) -> None:
        process = context.Process(target=self._run_prepare, args=(answers,), daemon=True)
        process.start()
        try:
            kind, _, payload = _next(answers, [process])
        finally:
            process.join()
        if kind == "error":
            raise pickle.loads(payload)

    def _run_prepare(self, answers: Any) -> None:
        """In the forked preparing process: run ``prepare``, say how it went."""
        assert self.prepare is not None
        try:
            self.prepare()
            answers.put(("done", -1, None))
        except BaseException as err:  # noqa: BLE001 - the parent raises it
            answers.put(("error", -1, _pickled(err)))

    def _collect(self, workers: list[Any], answers: Any, begun: float) -> Iterator[list[str]]:
        ready, ended, ready_at = 0, 0, begun
        broken: BaseException | None = None  # a process stopped by another's failure
        waiting: list[deque[str]] = [deque() for _ in workers]  # each process's lines not out
        owners, at = self.owners, 0  # ``at``: the position in the list of the next line out
        while ended < len(workers):
            kind, k, payload = _next(answers, workers)
            if kind == "lines":
                waiting[k].extend(payload)
                out: list[str] = []
                while at < len(owners) and waiting[owners[at]]:
                    out.append(waiting[owners[at]].popleft())
                    at += 1
                if out:
                    yield out
            elif kind == "ready":
                ready += 1
                if ready == len(workers):
                    ready_at = time.perf_counter()
                    self.ready_s = ready_at - begun
            else:  # "done" or "error"
                ended += 1
                if kind == "error":
                    err = pickle.loads(payload)
                    if not isinstance(err, threading.BrokenBarrierError):
                        raise err
                    broken = err  # the failure that broke the start line comes too
        if broken is not None:
            raise RuntimeError("a batch process stopped before deciding") from broken
        if at < len(owners) or any(waiting):
            raise RuntimeError(
                f"the batch processes' lines do not match the list ({at} of {len(owners)} out)"
            )
        self.deciding_s = time.perf_counter() - ready_at

    def _work(self, k: int, ids: list[str], start_line: Any, answers: Any) -> None:
        """In the forked process ``k``: build the engine, decide ``ids``, send the lines."""
        try:
            engine = self.open_engine()
            answers.put(("ready", k, None))
            start_line.wait()
            for part in engine.decide_chunks(
                ids, objective_id=self.objective_id, as_of=self.as_of, chunk=self.chunk
            ):
                answers.put(("lines", k, [self.render(decision) for decision in part]))
            engine.close()  # the budget leased and not spent goes back
            engine.store.close()  # the queued decision log is inserted
            answers.put(("done", k, None))
        except BaseException as err:  # noqa: BLE001 - the parent raises it
            start_line.abort()  # the others stop waiting for this one
            answers.put(("error", k, _pickled(err)))


def _next(answers: Any, processes: list[Any]) -> tuple[str, int, Any]:
    """The next message from ``processes``; raises if one of them died without a word."""
    while True:
        try:
            return answers.get(timeout=_POLL)  # type: ignore[no-any-return]
        except queue.Empty:
            for k, process in enumerate(processes):
                if process.exitcode not in (None, 0):
                    raise RuntimeError(
                        f"batch process {k} ended with exit code {process.exitcode}"
                    ) from None


def _pickled(err: BaseException) -> bytes:
    """The error, pickled to raise in the parent (its text, when it cannot be pickled)."""
    try:
        data = pickle.dumps(err)
        pickle.loads(data)
        return data
    except Exception:  # noqa: BLE001 - any error becomes a RuntimeError with its text
        return pickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"))
