"""Single decisions asked in the same turn of the event loop, decided together.

Under load, calls to ``POST /v1/decisions`` arrive many at a time, and the engine decides a chunk
of customers for far less work per customer than one at a time: their contexts are scored by one
policy call and their action features computed together (``experiments/bench_http.py``
measures what it buys). So the decision lane does not decide a call as soon as it has read it:
it queues the call, and once every call ready in this turn of the event loop has been read, they
are decided together (:meth:`serving.engine.DecisionEngine.decide_each`), at most ``limit`` per
turn. A call that comes alone waits for nothing but the end of that turn.

Each answer is the decision its own call would have been given at that moment, logged once:

* calls are grouped by objective and ``as_of``; within a group each keeps its request context;
* a customer asked for twice in one turn is decided twice, the second time after the first was
  logged, as two calls in a row are (its second call sees the first's contact);
* a group the engine refuses as a whole (an unknown or paused objective, ...) is decided call
  by call, and a call that fails alone gets ``None``: the full stack then answers it, with the
  route's error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from decisioning.decision import Decision
from serving.schemas import DecisionRequest

#: decides a group of calls for distinct customers, sharing an objective and ``as_of``
DecideGroup = Callable[[Sequence[DecisionRequest]], list[Decision]]
#: decides one call on its own
DecideOne = Callable[[DecisionRequest], Decision]


class MicroBatcher:
    """Queues decision calls and decides those of one event-loop turn together.

    ``decide_group`` decides calls for distinct customers with one objective and ``as_of``;
    ``decide_one`` decides a call alone, when its group failed; ``observe`` is told how many
    calls each turn decides. Safe on one event loop (the service's); the deciding itself runs on
    that loop, as a single decision does.
    """

    def __init__(
        self,
        decide_group: DecideGroup,
        decide_one: DecideOne,
        limit: int = 64,
        *,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.decide_group = decide_group
        self.decide_one = decide_one
        self.limit = limit
        #: told how many calls each turn decides (the service's metrics)
        self.observe = observe
        self._waiting: list[tuple[DecisionRequest, asyncio.Future[Decision | None]]] = []
        self._scheduled = False

    async def decide(self, call: DecisionRequest) -> Decision | None:
        """The logged decision for ``call``; None when it failed (the caller answers the error)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Decision | None] = loop.create_future()
        self._waiting.append((call, answer))
        if not self._scheduled:
            # after the calls already ready in this turn, which queue themselves meanwhile
            self._scheduled = True
            loop.call_soon(self._flush)
        return await answer

    def _flush(self) -> None:
        taken, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
        self._scheduled = bool(self._waiting)
        if self._scheduled:
            # the rest in the next turn: this turn's callers get their answers out first
            asyncio.get_running_loop().call_soon(self._flush)
        if self.observe is not None:
            self.observe(len(taken))
        try:
            answers = self.answers([call for call, _ in taken])
        except Exception:  # noqa: BLE001 - never leave a caller waiting: the full stack answers
            answers = [None] * len(taken)
        for (_, future), answer in zip(taken, answers, strict=True):
            if not future.done():  # a caller that was cancelled meanwhile
                future.set_result(answer)

    def answers(self, calls: Sequence[DecisionRequest]) -> list[Decision | None]:
        """The decisions for ``calls``, in their order (None for a call that failed)."""
        out: list[Decision | None] = [None] * len(calls)
        for group in _groups(calls):
            members = [calls[i] for i in group]
            try:
                decided = self.decide_group(members)
            except Exception:  # noqa: BLE001 - each call is decided alone instead
                for i in group:
                    out[i] = self._alone(calls[i])
                continue
            for i, decision in zip(group, decided, strict=True):
                out[i] = decision
        return out

    def _alone(self, call: DecisionRequest) -> Decision | None:
        try:
            return self.decide_one(call)
        except Exception:  # noqa: BLE001 - the full stack meets the same error and answers it
            return None


def _groups(calls: Sequence[DecisionRequest]) -> list[list[int]]:
    """Indices of ``calls`` in the groups they are decided in, in the order to decide them.

    A customer's n-th call falls in the n-th round, and rounds are decided in turn; within a
    round, calls sharing an objective and ``as_of`` form one group, in the order they came.
    """
    rounds: list[dict[tuple[str | None, datetime | None], list[int]]] = []
    seen: dict[str, int] = {}
    for i, call in enumerate(calls):
        n = seen.get(call.customer_id, 0)
        seen[call.customer_id] = n + 1
        if n == len(rounds):
            rounds.append({})
        rounds[n].setdefault((call.objective, call.as_of), []).append(i)
    return [group for groups in rounds for group in groups.values()]
