"""The decision service: one code path for the API, batches, backtests and the closed loop.

For a customer at a moment it loads the real-time view, asks the contact policy what may go,
lets the objective's policy (its MLflow champion, or the rule-based fallback) choose, arbitrates
across objectives (one voice), reserves budget, and logs the decision with its full action
distribution and propensity. It imports no web framework: the API is a thin layer over it.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Protocol

import numpy as np

from decisioning.actions import DO_NOTHING, ActionSpace
from decisioning.arbitration import ArbitrationWindow, Candidate, arbitrate
from decisioning.context import build_context
from decisioning.customer_view import CustomerState
from decisioning.decision import ActionValue, BlockedAction, Decision
from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.explanation import explain
from decisioning.features import customer_features
from decisioning.guardrails import ContactPolicy, ContactPolicySettings, ScheduledDecision
from decisioning.holdout import in_holdout
from decisioning.objectives import Objective
from decisioning.policy import DecisionContext, ServedPolicy, draw
from decisioning.segment import Segment, attribute_kinds, field_catalogue
from decisioning.store import Store
from models.encoding import BanditBatch
from training.online import FEATURES_KEY, decision_features

HOUR = 3600.0


class PolicySource(Protocol):
    """Where the engine gets each objective's policy (the MLflow champion, or a fallback)."""

    def policy_for(self, objective: Objective) -> ServedPolicy: ...


@dataclass(frozen=True, slots=True)
class Confirmation:
    """The send-time verdict on a scheduled decision."""

    decision_id: str
    go: bool
    reason: str | None
    status: str


@dataclass
class _Compiled:
    """An active objective, ready to decide: its segment, policy settings and action space."""

    objective: Objective
    segment: Segment
    contact_policy: ContactPolicy
    costs: np.ndarray
    actions: ActionSpace


@dataclass
class _Prepared:
    """One customer and objective, ready to score: the context and what the rules said."""

    objective: Objective
    state: CustomerState
    moment: datetime
    context: DecisionContext
    send_at: np.ndarray
    blocked: tuple[BlockedAction, ...]
    holdout: bool
    request: dict[str, Any]
    decision: Decision | None = None


def period_key(objective: Objective, moment: datetime) -> str:
    """The budget period ``moment`` falls in: ``2026-11-24``, ``2026-W48`` or ``2026-11``."""
    if objective.budget_period == "day":
        return moment.strftime("%Y-%m-%d")
    if objective.budget_period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return moment.strftime("%Y-%m")


class DecisionEngine:
    """Decides, confirms and logs; safe to share between threads."""

    def __init__(
        self,
        *,
        store: Store,
        policies: PolicySource,
        contact_policy: ContactPolicySettings | None = None,
        arbitration: ArbitrationWindow | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        objective_ttl: float = 5.0,
        log_features: bool = False,
    ) -> None:
        self.store = store
        self.policies = policies
        self.contact_settings = contact_policy or ContactPolicySettings()
        self.arbitration = arbitration or ArbitrationWindow()
        self.seed = seed
        self.clock = clock
        self.objective_ttl = objective_ttl
        #: log what the policy saw with each decision, for online learning (training.online)
        self.log_features = log_features
        self._lock = threading.Lock()
        self._compiled: dict[str, _Compiled] = {}
        self._loaded_at = -float("inf")
        self._fields: dict[str, str] | None = None

    # -- objectives ---------------------------------------------------------------------------

    def fields(self) -> dict[str, str]:
        """Fields a segment may use: behavioural features and the customers' attributes."""
        if self._fields is None:
            ids = [cid for _, cid in zip(range(500), self.store.iter_customer_ids(), strict=False)]
            states = self.store.get_states(ids).values()
            self._fields = field_catalogue(attribute_kinds([s.attributes for s in states]))
        return self._fields

    def refresh(self) -> None:
        """Reload the objectives now (after one was created, edited, paused or activated)."""
        with self._lock:
            self._loaded_at = -float("inf")
            self._fields = None

    def _objectives(self) -> dict[str, _Compiled]:
        now = time.monotonic()
        if now - self._loaded_at < self.objective_ttl:
            return self._compiled
        with self._lock:
            if now - self._loaded_at >= self.objective_ttl:
                compiled: dict[str, _Compiled] = {}
                for doc in self.store.list_objectives():
                    objective = Objective.model_validate(doc)
                    compiled[objective.id] = self._compile(objective)
                self._compiled, self._loaded_at = compiled, now
        return self._compiled

    def _compile(self, objective: Objective) -> _Compiled:
        settings = self.contact_settings
        if objective.guardrails:
            settings = settings.merged(objective.guardrails)
        return _Compiled(
            objective=objective,
            segment=Segment.parse(objective.segment or "", self._lenient_fields(objective)),
            contact_policy=ContactPolicy(settings),
            costs=objective.costs(objective.action_space()),
            actions=objective.action_space(),
        )

    def _lenient_fields(self, objective: Objective) -> dict[str, str]:
        try:
            fields = self.fields()
            Segment.parse(objective.segment or "", fields)
            return fields
        except InvalidInput:
            # Attributes not seen on any stored customer yet: match by the registered text.
            from decisioning.segment import check_segment_syntax

            extra = {f: "text" for f in check_segment_syntax(objective.segment or "")}
            return {**extra, **field_catalogue()}

    def objective(self, objective_id: str) -> Objective:
        compiled = self._objectives().get(objective_id)
        if compiled is None:
            raise NotFound(f"objective {objective_id!r} not found")
        return compiled.objective

    # -- deciding -----------------------------------------------------------------------------

    def decide(
        self,
        customer_id: str,
        *,
        objective_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        as_of: datetime | None = None,
        log: bool = True,
    ) -> Decision:
        """The decision for one customer now (or ``as_of``), logged unless ``log=False``."""
        decision = self._decide_chunk(
            [customer_id],
            states=self._states([customer_id]),
            pending={customer_id: self.store.pending_sends(customer_id)},
            objective_id=objective_id,
            request=request,
            as_of=as_of,
        )[0]
        if log:
            self.store.log_decision(decision)
        return decision

    def decide_many(
        self,
        customer_ids: Iterable[str],
        *,
        objective_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        as_of: datetime | None = None,
        chunk: int = 500,
        log: bool = True,
    ) -> Iterator[Decision]:
        """Decisions for many customers: the logic of :meth:`decide`, scored and logged in chunks.

        ``customer_ids`` may be any iterable (a segment streamed page by page).
        """
        ids = iter(customer_ids)
        while part := list(islice(ids, chunk)):
            out = self._decide_chunk(
                part,
                states=self._states(part),
                pending=self.store.pending_sends_many(part),
                objective_id=objective_id,
                request=request,
                as_of=as_of,
            )
            if log:
                self.store.log_decisions(out)
            yield from out

    def _states(self, ids: Sequence[str]) -> dict[str, CustomerState]:
        if len(ids) == 1:
            state = self.store.get_state(ids[0])
            return {ids[0]: state} if state is not None else {}
        return self.store.get_states(ids)

    def segment_members(self, objective_id: str, *, as_of: datetime | None = None) -> Iterator[str]:
        """Ids of the known customers in the objective's segment (evaluated page by page)."""
        compiled = self._objectives().get(objective_id)
        if compiled is None:
            raise NotFound(f"objective {objective_id!r} not found")
        now = (as_of or datetime.fromtimestamp(self.clock(), UTC)).timestamp()
        page: list[str] = []
        for cid in self.store.iter_customer_ids():
            page.append(cid)
            if len(page) == 1000:
                yield from self._members(compiled, page, now)
                page = []
        yield from self._members(compiled, page, now)

    def _members(self, compiled: _Compiled, page: list[str], now: float) -> Iterator[str]:
        for cid, state in self.store.get_states(page).items():
            if compiled.segment.matches({**customer_features(state, now), **state.attributes}):
                yield cid

    def _pool(self, objective_id: str | None) -> list[_Compiled]:
        objectives = self._objectives()
        if objective_id is None:
            return [c for c in objectives.values() if c.objective.status == "active"]
        compiled = objectives.get(objective_id)
        if compiled is None:
            raise NotFound(f"objective {objective_id!r} not found")
        if compiled.objective.status != "active":
            raise Conflict(f"objective {objective_id!r} is {compiled.objective.status}, not active")
        return [compiled]

    def _decide_chunk(
        self,
        customer_ids: Sequence[str],
        *,
        states: Mapping[str, CustomerState],
        pending: Mapping[str, Sequence[float]],
        objective_id: str | None,
        request: Mapping[str, Any] | None,
        as_of: datetime | None,
    ) -> list[Decision]:
        """Decide for customers at one moment: contexts first, then each policy once."""
        moment = as_of or datetime.fromtimestamp(self.clock(), UTC)
        if moment.tzinfo is None:
            raise InvalidInput("as_of: must carry a timezone")
        now = moment.timestamp()
        pool = self._pool(objective_id)
        remaining = {c.objective.id: self._remaining_budget(c.objective, moment) for c in pool}
        prepared: dict[str, list[_Prepared]] = {c.objective.id: [] for c in pool}
        per_customer: list[list[_Prepared]] = []
        for cid in customer_ids:
            if not cid:
                raise InvalidInput("customer_id: must not be empty")
            state = states.get(cid) or CustomerState(cid)  # cold start: nothing known yet
            mine = pending.get(cid, ())
            one_voice = self.arbitration.recent_decision_blocks(
                _last_contact(state, mine, now), now
            )
            customer_f = customer_features(state, now)
            row: list[_Prepared] = []
            for compiled in pool:
                prep = self._prepare(
                    compiled, state, now, moment, mine, request, one_voice, customer_f,
                    remaining=remaining[compiled.objective.id],
                    explicit=objective_id is not None,
                )  # fmt: skip
                if prep is not None:
                    row.append(prep)
                    prepared[compiled.objective.id].append(prep)
            per_customer.append(row)
        for compiled in pool:
            self._score(compiled, prepared[compiled.objective.id])
        out: list[Decision] = []
        for cid, row in zip(customer_ids, per_customer, strict=True):
            if not row:
                out.append(
                    self._nothing(cid, moment, "no active objective applies to this customer")
                )
                continue
            candidates = [
                Candidate(
                    p.objective.id,
                    p.objective.priority,
                    p.decision.action,
                    p.decision.expected_value,
                    p.decision,
                )  # fmt: skip
                for p in row
                if p.decision is not None
            ]
            chosen = arbitrate(candidates).decision
            assert chosen is not None
            out.append(chosen)
        return self._settle_budgets(out, moment)

    def _remaining_budget(self, objective: Objective, moment: datetime) -> float | None:
        if objective.budget_per_period is None:
            return None
        spent = self.store.spent(objective.id, period_key(objective, moment))
        return max(0.0, objective.budget_per_period - spent)

    def _prepare(
        self,
        compiled: _Compiled,
        state: CustomerState,
        now: float,
        moment: datetime,
        pending: Sequence[float],
        request: Mapping[str, Any] | None,
        one_voice: bool,
        customer_f: dict[str, float],
        *,
        remaining: float | None,
        explicit: bool,
    ) -> _Prepared | None:
        objective = compiled.objective
        in_segment = compiled.segment.matches({**customer_f, **state.attributes})
        if not explicit and state.known and not in_segment:
            return None
        context, eligibility = build_context(
            state,
            actions=compiled.actions,
            now=now,
            policy=compiled.contact_policy,
            costs=compiled.costs,
            remaining_budget=remaining,
            promoted_category=objective.outcome.category if objective.kind == "increase" else None,
            pending=pending,
            request=request,
            customer=customer_f,
        )
        blocked = list(eligibility.blocked)
        if one_voice:
            eligible = context.eligible.copy()
            for i in np.flatnonzero(eligible[1:]) + 1:
                eligible[i] = False
                blocked.append(
                    BlockedAction(
                        compiled.actions[i].key,
                        "one_voice",
                        "already contacted within the arbitration window",
                    )
                )
            context = replace(context, eligible=eligible)
        return _Prepared(
            objective=objective,
            state=state,
            moment=moment,
            context=context,
            send_at=eligibility.send_at,
            blocked=tuple(blocked),
            holdout=in_holdout(state.customer_id, objective.id, objective.holdout_fraction),
            request=dict(request or {}),
        )

    def _score(self, compiled: _Compiled, prepared: list[_Prepared]) -> None:
        """Ask the objective's policy once for all prepared contexts, then finish each decision."""
        if not prepared:
            return
        served = self.policies.policy_for(compiled.objective)
        policy = served.policy
        contexts = [p.context for p in prepared]
        batch_dist = getattr(policy, "action_distributions", None)
        if len(prepared) > 1 and batch_dist is not None:
            batch = BanditBatch.from_contexts(contexts)
            dists = batch_dist(batch)
            batch_values = getattr(policy, "values", None)
            values = batch_values(batch) if batch_values is not None else None
        else:
            dists = np.array([policy.action_distribution(c) for c in contexts])
            singles = [policy.expected_values(c) for c in contexts]
            values = None if singles[0] is None else np.array(singles)
        for i, prep in enumerate(prepared):
            prep.decision = self._finish(
                prep, served, dists[i], None if values is None else values[i]
            )

    def _finish(
        self,
        prep: _Prepared,
        served: ServedPolicy,
        dist: np.ndarray,
        values: np.ndarray | None,
    ) -> Decision:
        objective, context = prep.objective, prep.context
        actions = context.actions
        if prep.holdout:
            dist = np.zeros(len(actions))
            dist[0] = 1.0
            index, propensity = 0, 1.0
        else:
            rng = np.random.default_rng(
                self._seed_for(context.customer_id, objective.id, context.now)
            )
            index, propensity = draw(dist, rng)
        action = actions[index]
        expected = None if values is None else float(values[index])
        nothing_value = None if values is None else float(values[0])
        alternatives = _alternatives(actions.keys, values, context.eligible, index)
        send_ts = None if action.is_nothing else float(prep.send_at[index])
        return Decision(
            decision_id=uuid.uuid4().hex,
            customer_id=context.customer_id,
            decided_at=prep.moment,
            objective_id=objective.id,
            objective_version=objective.version,
            action=action,
            send_at=datetime.fromtimestamp(send_ts, UTC) if send_ts is not None else None,
            propensity=propensity,
            model_version=served.model_version,
            actions=actions.keys,
            distribution=tuple(dist.tolist()),
            eligible=tuple(context.eligible.tolist()),
            expected_value=expected,
            alternatives=alternatives,
            blocked=prep.blocked,
            holdout=prep.holdout,
            fallback=served.fallback,
            explanation=explain(
                action=action,
                objective_name=objective.name,
                expected_value=expected,
                nothing_value=nothing_value,
                alternatives=alternatives,
                blocked=prep.blocked,
                holdout=prep.holdout,
                fallback=served.fallback,
                n_actions=len(actions),
            ),
            context={
                "request": prep.request,
                "known_customer": prep.state.known,
                **({FEATURES_KEY: decision_features(context)} if self.log_features else {}),
            },
        )

    def _settle_budgets(self, decisions: list[Decision], moment: datetime) -> list[Decision]:
        """Reserve the cost of the chunk's contacts; what the budget cannot pay becomes nothing.

        One reservation per objective covers the whole chunk; only when it does not fit are the
        contacts reserved one by one, in order, until the budget runs out.
        """
        owed: dict[str, list[tuple[int, float]]] = {}
        for i, decision in enumerate(decisions):
            if decision.action.is_nothing or decision.objective_id is None:
                continue
            compiled = self._objectives().get(decision.objective_id)
            if compiled is None or compiled.objective.budget_per_period is None:
                continue
            cost = compiled.objective.cost_of(decision.action.channel)
            if cost > 0:
                owed.setdefault(decision.objective_id, []).append((i, cost))
        out = list(decisions)
        for objective_id, items in owed.items():
            objective = self._objectives()[objective_id].objective
            key, limit = period_key(objective, moment), objective.budget_per_period
            assert limit is not None
            if self.store.reserve_spend(objective_id, key, sum(c for _, c in items), limit=limit):
                continue
            for i, cost in items:
                if not self.store.reserve_spend(objective_id, key, cost, limit=limit):
                    out[i] = replace(
                        out[i],
                        action=DO_NOTHING,
                        send_at=None,
                        propensity=out[i].distribution[0] or out[i].propensity,
                        explanation="Do nothing: the objective's budget for this period is spent.",
                    )
        return out

    def _nothing(self, customer_id: str, moment: datetime, why: str) -> Decision:
        return Decision(
            decision_id=uuid.uuid4().hex,
            customer_id=customer_id,
            decided_at=moment,
            objective_id=None,
            objective_version=None,
            action=DO_NOTHING,
            send_at=None,
            propensity=1.0,
            model_version="none",
            actions=("none",),
            distribution=(1.0,),
            eligible=(True,),
            explanation=f"Do nothing: {why}.",
        )

    def _seed_for(self, customer_id: str, objective_id: str, now: float) -> int:
        digest = hashlib.blake2b(
            f"{self.seed}:{objective_id}:{customer_id}:{now:.3f}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big")

    # -- after the decision -------------------------------------------------------------------

    def confirm(self, decision_id: str, *, at: datetime | None = None) -> Confirmation:
        """Re-validate a scheduled decision at send time: go, or cancelled with its reason."""
        logged = self.store.get_decision(decision_id)
        decision = logged.decision
        if logged.status != "scheduled":
            raise Conflict(f"decision {decision_id!r} is {logged.status}, not scheduled")
        moment = at or datetime.fromtimestamp(self.clock(), UTC)
        state = self.store.get_state(decision.customer_id) or CustomerState(decision.customer_id)
        compiled = self._objectives().get(decision.objective_id or "")
        policy = compiled.contact_policy if compiled else ContactPolicy(self.contact_settings)
        others = [
            t
            for t in self.store.pending_sends(decision.customer_id)
            if decision.send_at is None or abs(t - decision.send_at.timestamp()) > 1e-6
        ]
        go, reason = policy.revalidate(
            state, ScheduledDecision.from_decision(decision), moment.timestamp(), pending=others
        )
        if not go:
            self.store.update_decision_status(decision_id, "cancelled", at=moment)
            return Confirmation(decision_id, False, reason, "cancelled")
        return Confirmation(decision_id, True, None, "scheduled")


def _last_contact(state: CustomerState, pending: Sequence[float], now: float) -> float | None:
    """When the customer was last contacted, or a scheduled contact was decided (as ``now``)."""
    times = [s.last_contact for s in state.channels.values() if s.last_contact is not None]
    if any(t > now for t in pending):
        times.append(now - 1e-3)  # a contact already scheduled holds the customer
    return max(times) if times else None


def _alternatives(
    keys: Sequence[str], values: np.ndarray | None, eligible: np.ndarray, chosen: int, k: int = 3
) -> tuple[ActionValue, ...]:
    """The best eligible actions other than the chosen one, by expected value."""
    if values is None:
        return ()
    order = [i for i in np.argsort(-values) if eligible[i] and i != chosen][:k]
    return tuple(ActionValue(keys[i], float(values[i])) for i in order)
