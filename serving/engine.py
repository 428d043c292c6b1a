"""The decision service: one code path for the API, batches, backtests and the closed loop.

For a customer at a moment it loads the real-time view, asks the contact policy what may go,
lets the objective's policy (its MLflow champion, or the rule-based fallback) choose, arbitrates
across objectives (one voice), reserves budget, and logs the decision with its full action
distribution and propensity. It imports no web framework: the API is a thin layer over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from itertools import islice
from types import MappingProxyType
from typing import Any

import numpy as np

from decisioning.actions import DO_NOTHING
from decisioning.arbitration import ArbitrationWindow, Candidate, arbitrate
from decisioning.context import context_of
from decisioning.customer_view import CustomerState
from decisioning.decision import Decision
from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.features import action_feature_matrices, action_feature_matrix, customer_features
from decisioning.guardrails import ContactPolicy, ContactPolicySettings, ScheduledDecision
from decisioning.holdout import in_holdout
from decisioning.objectives import Objective
from decisioning.store import Store
from models.encoding import BanditBatch
from serving.budget_leases import BudgetLeases

# The records and helpers live in their own modules; their names stay importable from here.
from serving.engine_parts import (
    Confirmation,
    PolicySource,
    Prepared,
    finish_decision,
    last_contact,
    new_decision_ids,
    nothing_decision,
    period_key,
)
from serving.in_flight import InFlight
from serving.objective_cache import CompiledObjective, ObjectiveCache

HOUR = 3600.0
#: what a segment that reads attributes only sees of a customer's behaviour
_NO_FEATURES: Mapping[str, float] = MappingProxyType({})
#: customers of one objective from which a chunk's action features are computed together
_CHUNK_FEATURES = 8


def _chunks(customer_ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """``customer_ids`` in lists of at most ``size``, none listing a customer twice: a customer
    listed again starts the next list, so that its decision comes after the previous one's."""
    ids = iter(customer_ids)
    while part := list(islice(ids, size)):
        if len(set(part)) == len(part):
            yield part
            continue
        start, seen = 0, set[str]()
        for i, cid in enumerate(part):
            if cid in seen:
                yield part[start:i]
                start, seen = i, set()
            seen.add(cid)
        yield part[start:]


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
        budget_ttl: float = 1.0,
        budget_lease: float = 0.01,
    ) -> None:
        self.store = store
        self.policies = policies
        self.arbitration = arbitration or ArbitrationWindow()
        self.seed = seed
        self.clock = clock
        #: log what the policy saw with each decision, for online learning (training.online)
        self.log_features = log_features
        self._cache = ObjectiveCache(
            store, contact_settings=contact_policy or ContactPolicySettings(), ttl=objective_ttl
        )
        #: seconds the budget spent per objective and period is reused before reading it again
        self.budget_ttl = budget_ttl
        self._spent: dict[tuple[str, str], tuple[float, float]] = {}
        #: the customers whose logged decision is being made (a batch's chunk, a call)
        self._in_flight = InFlight()
        self.budgets = BudgetLeases(
            lambda objective_id, key, amount, limit: store.reserve_spend(
                objective_id, key, amount, limit=limit
            ),
            store.add_spend,
            fraction=budget_lease,
        )

    @property
    def contact_settings(self) -> ContactPolicySettings:
        """The service's guardrails, before each objective's own are merged in."""
        return self._cache.contact_settings

    @contact_settings.setter
    def contact_settings(self, value: ContactPolicySettings) -> None:
        self._cache.contact_settings = value

    @property
    def objective_ttl(self) -> float:
        """Seconds the compiled objectives are reused before the store is read again."""
        return self._cache.ttl

    @objective_ttl.setter
    def objective_ttl(self, value: float) -> None:
        self._cache.ttl = value

    # -- objectives ---------------------------------------------------------------------------

    def fields(self) -> dict[str, str]:
        """Fields a segment may use: behavioural features and the customers' attributes."""
        return self._cache.fields()

    def refresh(self) -> None:
        """Reload the objectives now (after one was created, edited, paused or activated)."""
        self._cache.refresh()

    def _objectives(self) -> dict[str, CompiledObjective]:
        return self._cache.compiled()

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
        return self._decide_logged(
            [customer_id], [request], objective_id=objective_id, as_of=as_of, log=log
        )[0]

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

        ``customer_ids`` may be any iterable (a segment streamed page by page). A customer
        listed again is decided again, after the chunk of its previous decision was logged, as
        a second call of :meth:`decide` is: it sees that decision's contact (one voice, caps).
        """
        for part in self.decide_chunks(
            customer_ids, objective_id=objective_id, request=request, as_of=as_of, chunk=chunk,
            log=log,
        ):  # fmt: skip
            yield from part

    def decide_chunks(
        self,
        customer_ids: Iterable[str],
        *,
        objective_id: str | None = None,
        request: Mapping[str, Any] | None = None,
        as_of: datetime | None = None,
        chunk: int = 500,
        log: bool = True,
    ) -> Iterator[list[Decision]]:
        """:meth:`decide_many`'s decisions a chunk at a time, each list logged before it comes
        (for a caller that writes a chunk's answers at once, as the API's batch stream does)."""
        if chunk < 1:
            raise InvalidInput(f"chunk: must be at least 1, got {chunk}")
        for part in _chunks(customer_ids, chunk):
            yield self._decide_logged(
                part, [request] * len(part), objective_id=objective_id, as_of=as_of, log=log
            )

    def decide_each(
        self,
        asks: Sequence[tuple[str, Mapping[str, Any] | None]],
        *,
        objective_id: str | None = None,
        as_of: datetime | None = None,
        log: bool = True,
    ) -> list[Decision]:
        """The decisions of several :meth:`decide` calls at one moment, taken as one chunk.

        ``asks`` pairs each customer with the request context of its call. Each answer is the
        decision ``decide`` gives that customer with that context, for much less work per
        customer (see :mod:`serving.micro_batch`). The customers must differ: a customer's
        second call must see its first decision, so it belongs in a later call.
        """
        ids = [cid for cid, _ in asks]
        if len(set(ids)) != len(ids):
            raise InvalidInput("decide_each: a customer may be asked for once per call")
        requests = [request for _, request in asks]
        return self._decide_logged(ids, requests, objective_id=objective_id, as_of=as_of, log=log)

    def _decide_logged(
        self,
        ids: Sequence[str],
        requests: Sequence[Mapping[str, Any] | None],
        *,
        objective_id: str | None,
        as_of: datetime | None,
        log: bool,
    ) -> list[Decision]:
        """One chunk of customers decided, and logged unless ``log=False`` (distinct customers:
        claimed while they are decided and logged, see :mod:`serving.in_flight`)."""
        with self._in_flight.claim(ids) if log else nullcontext():
            out = self._decide_chunk(
                ids,
                states=self._states(ids),
                pending=self.store.pending_sends_many(ids),
                objective_id=objective_id,
                requests=requests,
                as_of=as_of,
            )
            if log:
                self.store.log_decisions(out, defer=True)
        return out

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

    def _members(self, compiled: CompiledObjective, page: list[str], now: float) -> Iterator[str]:
        segment = compiled.segment
        behaviour = segment.uses_behaviour
        for cid, state in self.store.get_states(page).items():
            seen = customer_features(state, now) if behaviour else _NO_FEATURES
            if segment.matches_customer(seen, state.attributes):
                yield cid

    def _pool(self, objective_id: str | None) -> list[CompiledObjective]:
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
        requests: Sequence[Mapping[str, Any] | None],
        as_of: datetime | None,
    ) -> list[Decision]:
        """Decide for customers at one moment: contexts first, then each policy once.

        ``requests[i]`` is the request context of ``customer_ids[i]``.
        """
        moment = as_of or datetime.fromtimestamp(self.clock(), UTC)
        if moment.tzinfo is None:
            raise InvalidInput("as_of: must carry a timezone")
        now = moment.timestamp()
        pool = self._pool(objective_id)
        remaining = {c.objective.id: self._remaining_budget(c.objective, moment) for c in pool}
        prepared: dict[str, list[Prepared]] = {c.objective.id: [] for c in pool}
        per_customer: list[list[Prepared]] = []
        # an explicit objective decides for anyone; otherwise a known customer must be in the
        # segment, which needs the behavioural features only when its expression reads them
        check = objective_id is None
        behaviour = check and any(c.segment.uses_behaviour for c in pool)
        for cid, request in zip(customer_ids, requests, strict=True):
            if not cid:
                raise InvalidInput("customer_id: must not be empty")
            state = states.get(cid) or CustomerState(cid)  # cold start: nothing known yet
            mine = pending.get(cid, ())
            one_voice = self.arbitration.recent_decision_blocks(last_contact(state, mine, now), now)
            customer_f = customer_features(state, now) if behaviour else None
            seen = _NO_FEATURES if customer_f is None else customer_f
            row: list[Prepared] = []
            for compiled in pool:
                in_segment = compiled.segment.matches_customer
                if check and state.known and not in_segment(seen, state.attributes):
                    continue
                if customer_f is None:
                    customer_f = customer_features(state, now)
                prep = self._prepare(
                    compiled, state, now, moment, mine, request, one_voice, customer_f,
                    remaining=remaining[compiled.objective.id],
                )  # fmt: skip
                row.append(prep)
                prepared[compiled.objective.id].append(prep)
            per_customer.append(row)
        for compiled in pool:
            self._attach_contexts(compiled, prepared[compiled.objective.id])
            self._score(compiled, prepared[compiled.objective.id])
        out: list[Decision] = []
        for cid, row in zip(customer_ids, per_customer, strict=True):
            if not row:
                out.append(
                    nothing_decision(cid, moment, "no active objective applies to this customer")
                )
                continue
            if len(row) == 1:  # one objective: nothing to arbitrate
                assert row[0].decision is not None
                out.append(row[0].decision)
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
        """What the period's budget has left, as the contact policy's guide.

        Read from the store at most every ``budget_ttl`` seconds and kept current with this
        engine's own reservations; the reservation itself (``_settle_budgets``) is the exact
        check, so a guide a moment old can never overspend.
        """
        if objective.budget_per_period is None:
            return None
        key = (objective.id, period_key(objective, moment))
        now = time.monotonic()
        known = self._spent.get(key)
        if known is None or now - known[1] > self.budget_ttl:
            known = (self.store.spent(*key), now)
            self._spent[key] = known
        left = objective.budget_per_period - known[0] + self.budgets.leased(*key)
        return max(0.0, left)

    def close(self) -> None:
        """Give the budget leased but not spent back to the store (at shutdown)."""
        self.budgets.release()
        self._spent.clear()

    def _prepare(
        self,
        compiled: CompiledObjective,
        state: CustomerState,
        now: float,
        moment: datetime,
        pending: Sequence[float],
        request: Mapping[str, Any] | None,
        one_voice: bool,
        customer_f: dict[str, float],
        *,
        remaining: float | None,
    ) -> Prepared:
        """What the contact policy allows a customer of the objective's segment."""
        objective = compiled.objective
        eligibility = compiled.contact_policy.evaluate(
            state,
            compiled.actions,
            now,
            costs=compiled.costs,
            remaining_budget=remaining,
            promoted_category=objective.outcome.category if objective.kind == "increase" else None,
            pending=pending,
            one_voice=one_voice,
        )
        return Prepared(
            objective=objective,
            state=state,
            moment=moment,
            send_at=eligibility.send_at,
            blocked=eligibility.blocked,
            holdout=in_holdout(state.customer_id, objective.id, objective.holdout_fraction),
            request=dict(request or {}),
            customer=customer_f,
            eligible=eligibility.eligible,
        )

    def _attach_contexts(self, compiled: CompiledObjective, prepared: list[Prepared]) -> None:
        """What the policy sees, for every prepared customer of one objective.

        The action features of a chunk are computed together (``action_feature_matrices``),
        those of a few customers one by one: the same figures either way. Those of the actions
        the contact policy blocks are zeros, not worked out (no policy scores them).
        """
        if not prepared:
            return
        actions, now = compiled.actions, prepared[0].moment.timestamp()
        rows: np.ndarray | list[np.ndarray]  # (n, actions, features) or one matrix apiece
        if len(prepared) >= _CHUNK_FEATURES:
            rows = action_feature_matrices(
                [p.state for p in prepared], actions.actions, now,
                [p.customer for p in prepared], np.stack([p.send_at for p in prepared]),
                np.stack([p.eligible for p in prepared]),
            )  # fmt: skip
        else:
            rows = [
                action_feature_matrix(
                    p.state, actions.actions, now, p.customer, p.send_at, p.eligible
                )
                for p in prepared
            ]
        for prep, features in zip(prepared, rows, strict=True):
            prep.context = context_of(
                prep.state, actions=actions, now=now, customer=prep.customer,
                action_features=features, eligible=prep.eligible, request=prep.request,
                costs=compiled.costs,
            )  # fmt: skip

    def _score(self, compiled: CompiledObjective, prepared: list[Prepared]) -> None:
        """Ask the objective's policy once for all prepared contexts, then finish each decision."""
        if not prepared:
            return
        served = self.policies.policy_for(compiled.objective)
        policy = served.policy
        contexts = [p.context for p in prepared]
        batch_dist = getattr(policy, "action_distributions", None)
        # a policy that scores once for both the distribution and the values says so
        batch_both = getattr(policy, "distributions_and_values", None)
        one_both = getattr(policy, "distribution_and_values", None)
        values: np.ndarray | None
        if len(prepared) > 1 and batch_dist is not None:
            batch = BanditBatch.from_contexts(contexts)
            if batch_both is not None:
                dists, values = batch_both(batch)
            else:
                dists = batch_dist(batch)
                batch_values = getattr(policy, "values", None)
                values = batch_values(batch) if batch_values is not None else None
        elif one_both is not None:
            pairs = [one_both(c) for c in contexts]
            dists = np.array([d for d, _ in pairs])
            values = None if pairs[0][1] is None else np.array([v for _, v in pairs])
        else:
            dists = np.array([policy.action_distribution(c) for c in contexts])
            singles = [policy.expected_values(c) for c in contexts]
            values = None if singles[0] is None else np.array(singles)
        ids = new_decision_ids(len(prepared))
        for i, prep in enumerate(prepared):
            prep.decision = finish_decision(
                prep,
                served,
                dists[i],
                None if values is None else values[i],
                seed=self.seed,
                log_features=self.log_features,
                decision_id=ids[i],
            )

    def _settle_budgets(self, decisions: list[Decision], moment: datetime) -> list[Decision]:
        """Reserve the cost of the chunk's contacts; what the budget cannot pay becomes nothing.

        One payment per objective covers the whole chunk; only when it does not fit are the
        contacts paid one by one, in order, until the budget runs out. Payments come from
        budget leased in the store ahead (``serving.budget_leases``): exact, without a write
        per contact.
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
            if self.budgets.pay(objective_id, key, sum(c for _, c in items), limit=limit):
                continue
            self._spent.pop((objective_id, key), None)  # read again: others spent meanwhile
            for i, cost in items:
                if not self.budgets.pay(objective_id, key, cost, limit=limit):
                    out[i] = replace(
                        out[i],
                        action=DO_NOTHING,
                        send_at=None,
                        propensity=out[i].distribution[0] or out[i].propensity,
                        explanation="Do nothing: the objective's budget for this period is spent.",
                    )
        return out

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
