"""Online learning: the served bandit goes on learning from each reward as it comes in.

With ``settings.online_learning`` on, the decision engine logs what the policy saw with each
decision (:func:`decision_features`, kept in ``Decision.context``). An :class:`OnlineUpdater`
takes rewards (from :func:`training.attribution.attribute`, or explicit ones), rebuilds each
decision's context from the log (:func:`logged_context`) and teaches the objective's policy
with ``learn_one(context, action, reward, pscore)`` in a background thread. Only decisions the
current champion took are learned from: a reward of another model's decision says nothing
about this model's exploration. Holdout decisions are skipped too (their action was forced).

The next batch training run learns from the whole log anyway; online updates only let the
served bandit move between runs, so a full queue drops rewards instead of blocking callers.

>>> updater = OnlineUpdater(engine.policies, store).start()  # doctest: +SKIP
>>> updater.submit(attribute(store, now=datetime.now(UTC)).rewards)  # doctest: +SKIP
>>> updater.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from decisioning.decision import Decision
from decisioning.errors import NotFound
from decisioning.features import BEHAVIOUR_FEATURES
from decisioning.objectives import Objective
from decisioning.policy import DecisionContext, ServedPolicy

logger = logging.getLogger(__name__)

#: key of ``Decision.context`` under which the engine logs the policy's inputs
FEATURES_KEY = "features"
#: decimals kept of each logged feature (VW learns in float32: 6 decimals lose nothing it sees)
DECIMALS = 6


class PolicySource(Protocol):
    """Where the served policy of each objective comes from (the engine's policy source)."""

    def policy_for(self, objective: Objective) -> ServedPolicy: ...


def decision_features(context: DecisionContext) -> dict[str, Any]:
    """What the policy saw for one decision, small enough to log with it.

    Customer features in ``BEHAVIOUR_FEATURES`` order, the action feature matrix and the
    customer's attributes; eligibility, the request and the costs are logged or derived
    elsewhere (``Decision.eligible``, ``context["request"]``, the objective version).
    """
    return {
        "customer": [round(float(context.customer[name]), DECIMALS) for name in BEHAVIOUR_FEATURES],
        "actions": np.round(np.asarray(context.action_features, dtype=float), DECIMALS).tolist(),
        "attributes": dict(context.attributes),
    }


def logged_context(decision: Decision, objective: Objective) -> DecisionContext | None:
    """The context the policy decided on, rebuilt from the decision log; None if not logged.

    ``objective`` is the version the decision was taken under (its action space and costs).
    None also when the log does not fit the objective's action space or the current features.
    """
    doc = decision.context.get(FEATURES_KEY)
    if not isinstance(doc, Mapping):
        return None
    actions = objective.action_space()
    features = np.asarray(doc.get("actions", ()), dtype=float)
    customer = doc.get("customer", ())
    if (
        tuple(decision.actions) != actions.keys
        or len(customer) != len(BEHAVIOUR_FEATURES)
        or features.shape[0] != len(actions)
        or len(decision.eligible) != len(actions)
    ):
        return None
    request = decision.context.get("request")
    return DecisionContext(
        customer_id=decision.customer_id,
        now=decision.decided_at.timestamp(),
        actions=actions,
        customer=dict(zip(BEHAVIOUR_FEATURES, map(float, customer), strict=True)),
        attributes=dict(doc.get("attributes") or {}),
        action_features=features,
        eligible=np.asarray(decision.eligible, dtype=bool),
        request=dict(request) if isinstance(request, Mapping) else {},
        costs=objective.costs(actions),
    )


@dataclass(frozen=True)
class OnlineStats:
    """What an updater did: rewards learned from, skipped (by reason), dropped, failed."""

    learned: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    failed: int = 0


class OnlineUpdater:
    """Teaches the champion policies online from rewards, in a background thread.

    Parameters
    ----------
    policies : PolicySource
        The engine's policy source: the policy it serves now is the one updated.
    store
        The :class:`decisioning.store.Store` holding the decision log and objectives.
    max_queue : int
        Rewards waiting at most; :meth:`submit` drops the rest (counted in ``stats.dropped``).
    batch : int
        Rewards taken from the queue at a time.
    """

    def __init__(
        self, policies: PolicySource, store: Any, *, max_queue: int = 10_000, batch: int = 256
    ) -> None:
        self.policies = policies
        self.store = store
        self.batch = batch
        self._queue: queue.Queue[tuple[str, float]] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._learned = self._dropped = self._failed = 0
        self._skipped: dict[str, int] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> OnlineUpdater:
        """Start the background thread (once)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="online-updater", daemon=True
                )
                self._thread.start()
        return self

    def stop(self, *, drain: bool = True, timeout: float | None = 30.0) -> None:
        """Stop the thread: after learning what is queued (``drain``), or at once (dropped)."""
        if drain:
            self.wait(timeout)
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        while True:  # whatever is left will not be learned: say so
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._queue.task_done()
            self._count("dropped")

    def __enter__(self) -> OnlineUpdater:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- feeding --------------------------------------------------------------------------------

    def submit(self, rewards: Mapping[str, float] | Iterable[tuple[str, float]]) -> int:
        """Queue ``(decision_id, reward)`` pairs; how many were accepted (the rest dropped)."""
        items = rewards.items() if isinstance(rewards, Mapping) else rewards
        accepted = 0
        for decision_id, reward in items:
            try:
                self._queue.put_nowait((str(decision_id), float(reward)))
                accepted += 1
            except queue.Full:
                self._count("dropped")
        return accepted

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued reward is processed; False if ``timeout`` passed first."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: self._queue.unfinished_tasks == 0, timeout)

    @property
    def stats(self) -> OnlineStats:
        with self._lock:
            return OnlineStats(self._learned, dict(self._skipped), self._dropped, self._failed)

    # -- learning -------------------------------------------------------------------------------

    def learn(self, rewards: Iterable[tuple[str, float]]) -> int:
        """Learn from rewards now, in the caller's thread; how many updated a policy."""
        objectives: dict[tuple[str, int | None], Objective] = {}
        learned = 0
        for decision_id, reward in rewards:
            try:
                reason = self._learn_one(decision_id, reward, objectives)
            except Exception:  # one bad record must not stop online learning
                logger.exception("online update from decision %s failed", decision_id)
                self._count("failed")
                continue
            if reason is None:
                learned += 1
                self._count("learned")
            else:
                self._count("skipped", reason)
        return learned

    def _learn_one(
        self, decision_id: str, reward: float, objectives: dict[tuple[str, int | None], Objective]
    ) -> str | None:
        """Update the champion from one reward; None when done, else why it was skipped."""
        try:
            decision = self.store.get_decision(decision_id).decision
        except NotFound:
            return "decision not logged"
        if decision.objective_id is None:
            return "decision for no objective"
        if decision.holdout:
            return "holdout decision"
        try:
            latest = self._objective(decision.objective_id, None, objectives)
            version = self._objective(decision.objective_id, decision.objective_version, objectives)
        except NotFound:
            return "objective not stored"
        served = self.policies.policy_for(latest)
        if served.fallback or served.model_version != decision.model_version:
            return "decided by another model than the champion"
        learn_one = getattr(served.policy, "learn_one", None)
        if not callable(learn_one):
            return "the champion does not learn online"
        context = logged_context(decision, version)
        if context is None:
            return "features not logged with the decision"
        learn_one(context, decision.action.key, reward, decision.propensity)
        return None

    def _objective(
        self, objective_id: str, version: int | None, cache: dict[tuple[str, int | None], Objective]
    ) -> Objective:
        key = (objective_id, version)
        if key not in cache:
            cache[key] = Objective.model_validate(self.store.get_objective(objective_id, version))
        return cache[key]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            items = [first]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.learn(items)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _count(self, what: str, reason: str | None = None) -> None:
        with self._lock:
            if what == "learned":
                self._learned += 1
            elif what == "dropped":
                self._dropped += 1
            elif what == "failed":
                self._failed += 1
            else:
                assert reason is not None
                self._skipped[reason] = self._skipped.get(reason, 0) + 1
