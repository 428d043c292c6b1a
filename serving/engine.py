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
from typing import Any, Protocol

import numpy as np

from decisioning.actions import DO_NOTHING, Action
from decisioning.arbitration import ArbitrationWindow, Candidate, arbitrate
from decisioning.context import build_context
from decisioning.customer_view import CustomerState
from decisioning.decision import ActionValue, BlockedAction, Decision
from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.explanation import explain
from decisioning.guardrails import ContactPolicy, ContactPolicySettings, ScheduledDecision
from decisioning.holdout import in_holdout
from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy, draw
from decisioning.segment import Segment, attribute_kinds, field_catalogue
from decisioning.store import Store

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
    ) -> None:
        self.store = store
        self.policies = policies
        self.contact_settings = contact_policy or ContactPolicySettings()
        self.arbitration = arbitration or ArbitrationWindow()
        self.seed = seed
        self.clock = clock
        self.objective_ttl = objective_ttl
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
        decision = self._decide(
            customer_id,
            state=self.store.get_state(customer_id),
            pending=self.store.pending_sends(customer_id),
            objective_id=objective_id,
            request=request,
            as_of=as_of,
        )
        if log:
            self.store.log_decision(decision)
        return decision

    def decide_many(
        self,
        customer_ids: Sequence[str],
        *,
        objective_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        as_of: datetime | None = None,
        chunk: int = 500,
        log: bool = True,
    ) -> Iterator[Decision]:
        """Decisions for many customers, the same logic as :meth:`decide`, read and logged in chunks."""
        for start in range(0, len(customer_ids), chunk):
            part = list(customer_ids[start : start + chunk])
            states = self.store.get_states(part)
            pending = self.store.pending_sends_many(part)
            out = [
                self._decide(
                    cid,
                    state=states.get(cid),
                    pending=pending.get(cid, []),
                    objective_id=objective_id,
                    request=request,
                    as_of=as_of,
                )
                for cid in part
            ]
            if log:
                self.store.log_decisions(out)
            yield from out

    def segment_members(self, objective_id: str, *, as_of: datetime | None = None) -> Iterator[str]:
        """Ids of the known customers in the objective's segment (evaluated page by page)."""
        compiled = self._objectives().get(objective_id)
        if compiled is None:
            raise NotFound(f"objective {objective_id!r} not found")
        now = (as_of or datetime.fromtimestamp(self.clock(), UTC)).timestamp()
        from decisioning.features import customer_features

        page: list[str] = []
        for cid in self.store.iter_customer_ids():
            page.append(cid)
            if len(page) == 1000:
                yield from self._members(compiled, page, now, customer_features)
                page = []
        yield from self._members(compiled, page, now, customer_features)

    def _members(
        self, compiled: _Compiled, page: list[str], now: float, features: Any
    ) -> Iterator[str]:
        for cid, state in self.store.get_states(page).items():
            if compiled.segment.matches({**features(state, now), **state.attributes}):
                yield cid

    def _decide(
        self,
        customer_id: str,
        *,
        state: CustomerState | None,
        pending: Sequence[float],
        objective_id: str | None,
        request: Mapping[str, Any] | None,
        as_of: datetime | None,
    ) -> Decision:
        if not customer_id:
            raise InvalidInput("customer_id: must not be empty")
        moment = as_of or datetime.fromtimestamp(self.clock(), UTC)
        if moment.tzinfo is None:
            raise InvalidInput("as_of: must carry a timezone")
        now = moment.timestamp()
        if state is None:
            state = CustomerState(customer_id)  # cold start: nothing known yet
        objectives = self._objectives()
        if objective_id is not None:
            compiled = objectives.get(objective_id)
            if compiled is None:
                raise NotFound(f"objective {objective_id!r} not found")
            if compiled.objective.status != "active":
                raise Conflict(
                    f"objective {objective_id!r} is {compiled.objective.status}, not active"
                )
            pool = [compiled]
        else:
            pool = [c for c in objectives.values() if c.objective.status == "active"]
        last_contact = _last_contact(state, pending, now)
        one_voice = self.arbitration.recent_decision_blocks(last_contact, now)
        candidates: list[Candidate] = []
        for compiled in pool:
            decision = self._for_objective(
                compiled, state, now, moment, pending, request, one_voice,
                explicit=objective_id is not None,
            )  # fmt: skip
            if decision is not None:
                candidates.append(
                    Candidate(
                        compiled.objective.id,
                        compiled.objective.priority,
                        decision.action,
                        decision.expected_value,
                        decision,
                    )
                )
        if not candidates:
            return self._nothing(
                customer_id, moment, "no active objective applies to this customer"
            )
        chosen = arbitrate(candidates).decision
        assert chosen is not None
        return self._settle_budget(chosen, moment)

    def _for_objective(
        self,
        compiled: _Compiled,
        state: CustomerState,
        now: float,
        moment: datetime,
        pending: Sequence[float],
        request: Mapping[str, Any] | None,
        one_voice: bool,
        *,
        explicit: bool,
    ) -> Decision | None:
        objective = compiled.objective
        actions = objective.action_space()
        remaining = None
        if objective.budget_per_period is not None:
            spent = self.store.spent(objective.id, period_key(objective, moment))
            remaining = max(0.0, objective.budget_per_period - spent)
        context, eligibility = build_context(
            state,
            actions=actions,
            now=now,
            policy=compiled.contact_policy,
            costs=compiled.costs,
            remaining_budget=remaining,
            promoted_category=objective.outcome.category if objective.kind == "increase" else None,
            pending=pending,
            request=request,
        )
        if not explicit and state.known:
            values = {**context.customer, **context.attributes}
            if not compiled.segment.matches(values):
                return None
        eligible = eligibility.eligible
        blocked = list(eligibility.blocked)
        if one_voice:
            eligible = eligible.copy()
            for i in np.flatnonzero(eligible[1:]) + 1:
                eligible[i] = False
                blocked.append(
                    BlockedAction(
                        actions[i].key,
                        "one_voice",
                        "already contacted within the arbitration window",
                    )
                )
            context = replace(context, eligible=eligible)
        decision_id = uuid.uuid4().hex
        holdout = in_holdout(state.customer_id, objective.id, objective.holdout_fraction)
        served = self.policies.policy_for(objective)
        values_arr = served.policy.expected_values(context)
        if holdout:
            dist = np.zeros(len(actions))
            dist[0] = 1.0
            index, propensity = 0, 1.0
        else:
            dist = served.policy.action_distribution(context)
            rng = np.random.default_rng(self._seed_for(state.customer_id, objective.id, now))
            index, propensity = draw(dist, rng)
        action = actions[index]
        expected = None if values_arr is None else float(values_arr[index])
        nothing_value = None if values_arr is None else float(values_arr[0])
        alternatives = _alternatives(actions.keys, values_arr, eligible, index)
        send_ts = float(eligibility.send_at[index]) if not action.is_nothing else None
        return Decision(
            decision_id=decision_id,
            customer_id=state.customer_id,
            decided_at=moment,
            objective_id=objective.id,
            objective_version=objective.version,
            action=action,
            send_at=datetime.fromtimestamp(send_ts, UTC) if send_ts is not None else None,
            propensity=propensity,
            model_version=served.model_version,
            actions=actions.keys,
            distribution=tuple(float(p) for p in dist),
            eligible=tuple(bool(e) for e in eligible),
            expected_value=expected,
            alternatives=alternatives,
            blocked=tuple(blocked),
            holdout=holdout,
            fallback=served.fallback,
            explanation=explain(
                action=action,
                objective_name=objective.name,
                expected_value=expected,
                nothing_value=nothing_value,
                alternatives=alternatives,
                blocked=blocked,
                holdout=holdout,
                fallback=served.fallback,
                n_actions=len(actions),
            ),
            context={"request": dict(request or {}), "known_customer": state.known},
        )

    def _settle_budget(self, decision: Decision, moment: datetime) -> Decision:
        """Reserve a paid action's cost; if the budget ran out meanwhile, do nothing instead."""
        if decision.action.is_nothing or decision.objective_id is None:
            return decision
        compiled = self._objectives().get(decision.objective_id)
        if compiled is None or compiled.objective.budget_per_period is None:
            return decision
        objective = compiled.objective
        cost = objective.cost_of(decision.action.channel)
        if cost <= 0:
            return decision
        if self.store.reserve_spend(
            objective.id, period_key(objective, moment), cost, limit=objective.budget_per_period
        ):
            return decision
        return replace(
            decision,
            action=DO_NOTHING,
            send_at=None,
            propensity=decision.distribution[0] or decision.propensity,
            explanation="Do nothing: the objective's budget for this period is spent.",
        )

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

    def decide_and_iter(self, customer_ids: Iterable[str], **kwargs: Any) -> Iterator[Decision]:
        """:meth:`decide_many` over any iterable of ids (consumed in chunks)."""
        batch: list[str] = []
        for cid in customer_ids:
            batch.append(cid)
            if len(batch) >= kwargs.get("chunk", 500):
                yield from self.decide_many(batch, **kwargs)
                batch = []
        if batch:
            yield from self.decide_many(batch, **kwargs)


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


def action_of(decision: Decision) -> Action:
    return decision.action
