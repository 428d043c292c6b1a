"""The decision engine's records and the assembly of a logged decision.

What the engine passes between its steps (a customer and objective prepared for scoring, the
send-time verdict it returns) and the pure functions that turn a policy's distribution into a
logged ``Decision``: the draw, the alternatives, the explanation and the budget period.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from decisioning.actions import DO_NOTHING
from decisioning.customer_view import CustomerState
from decisioning.decision import ActionValue, BlockedAction, Decision
from decisioning.explanation import explain, local_time
from decisioning.objectives import Objective
from decisioning.policy import DecisionContext, ServedPolicy, draw
from training.online import FEATURES_KEY, decision_features


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
class Prepared:
    """One customer and objective, ready to score: what the rules said, then the context."""

    objective: Objective
    state: CustomerState
    moment: datetime
    send_at: np.ndarray
    blocked: tuple[BlockedAction, ...]
    holdout: bool
    request: dict[str, Any]
    customer: dict[str, float]
    eligible: np.ndarray
    #: what the policy sees, attached once the chunk's action features are computed
    context: DecisionContext = field(default=None)  # type: ignore[assignment]
    decision: Decision | None = None


def period_key(objective: Objective, moment: datetime) -> str:
    """The budget period ``moment`` falls in: ``2026-11-24``, ``2026-W48`` or ``2026-11``."""
    if objective.budget_period == "day":
        return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if objective.budget_period == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year:04d}-{moment.month:02d}"


def finish_decision(
    prep: Prepared,
    served: ServedPolicy,
    dist: np.ndarray,
    values: np.ndarray | None,
    *,
    seed: int,
    log_features: bool,
    decision_id: str,
) -> Decision:
    """The decision for ``prep``: drawn from ``dist`` (nothing for the holdout), explained."""
    objective, context = prep.objective, prep.context
    actions = context.actions
    if prep.holdout:
        shares = [1.0] + [0.0] * (len(actions) - 1)
        index, propensity = 0, 1.0
    else:
        shares = dist.tolist()
        if shares[0] > 0 and not any(shares[1:]):  # only doing nothing can be drawn
            index, propensity = 0, shares[0]
        else:
            u = (seed_for(seed, context.customer_id, objective.id, context.now) >> 11) / 2**53
            index, propensity = draw(dist, u)
    action = actions[index]
    expected = None if values is None else float(values[index])
    nothing_value = None if values is None else float(values[0])
    allowed = context.eligible.tolist()
    alternatives = best_alternatives(actions.keys, values, allowed, index)
    send_ts = None if action.is_nothing else float(prep.send_at[index])
    return Decision(
        decision_id=decision_id,
        customer_id=context.customer_id,
        decided_at=prep.moment,
        objective_id=objective.id,
        objective_version=objective.version,
        action=action,
        send_at=datetime.fromtimestamp(send_ts, UTC) if send_ts is not None else None,
        propensity=propensity,
        model_version=served.model_version,
        actions=actions.keys,
        distribution=tuple(shares),
        eligible=tuple(allowed),
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
            sends_at=None if send_ts is None else local_time(prep.state.timezone, send_ts),
        ),
        context={
            "request": prep.request,
            "known_customer": prep.state.known,
            **({FEATURES_KEY: decision_features(context)} if log_features else {}),
        },
    )


def nothing_decision(customer_id: str, moment: datetime, why: str) -> Decision:
    """The do-nothing decision when no objective applies, explained by ``why``."""
    return Decision(
        decision_id=new_decision_ids(1)[0],
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


class _RandomIds:
    """Decision ids in the layout of UUID version 7 (RFC 9562), as 32 hex digits.

    The first 48 bits are the Unix time in milliseconds, the other 74 random (system
    randomness, read 4 KiB at a time; thread-safe). Ids made later sort later, so the decision
    log's inserts append to its key's index instead of landing on a random page of it (measured:
    about a third less of the insert's work in a log of 60,000 decisions, more as it grows).
    """

    def __init__(self, block: int = 4096, clock: Callable[[], int] = time.time_ns) -> None:
        self.block = block
        self.clock = clock
        self._hex = ""
        self._at = 0
        self._lock = threading.Lock()

    def take(self, n: int) -> list[str]:
        with self._lock:
            need = _RANDOM_DIGITS * n
            if self._at + need > len(self._hex):
                self._hex = os.urandom(max(self.block, 10 * n)).hex()
                self._at = 0
            blob, at = self._hex, self._at
            self._at += need
        ms = f"{self.clock() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}7"
        return [
            f"{ms}{blob[i : i + 3]}{_VARIANT[blob[i + 3]]}{blob[i + 4 : i + _RANDOM_DIGITS]}"
            for i in range(at, at + need, _RANDOM_DIGITS)
        ]

    def forget(self) -> None:
        """Drop the unused randomness (in a forked child, which must not repeat its parent's)."""
        self._hex, self._at, self._lock = "", 0, threading.Lock()


#: random hex digits per id: 3 after the version digit, 1 for the variant (2 bits kept), 15
_RANDOM_DIGITS = 19
#: the variant digit (binary 10xx) that carries two random bits of a hex digit
_VARIANT = {f"{d:x}": "89ab"[d & 3] for d in range(16)}

_IDS = _RandomIds()
os.register_at_fork(after_in_child=_IDS.forget)


def new_decision_ids(n: int) -> list[str]:
    """``n`` new decision ids: UUID version 7 as 32 hex digits (time first, 74 random bits)."""
    return _IDS.take(n)


def seed_for(seed: int, customer_id: str, objective_id: str, now: float) -> int:
    """The draw's seed (64 bits): the same customer, objective and moment always draw alike."""
    digest = hashlib.blake2b(
        f"{seed}:{objective_id}:{customer_id}:{now:.3f}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def last_contact(state: CustomerState, pending: Sequence[float], now: float) -> float | None:
    """When the customer was last contacted, counting the scheduled sends not reported yet.

    A send due later holds the customer from now on; one whose time has passed counts as a
    contact at that time, sent or not reported yet.
    """
    times = [s.last_contact for s in state.channels.values() if s.last_contact is not None]
    times += [min(t, now - 1e-3) for t in pending]
    return max(times) if times else None


def best_alternatives(
    keys: Sequence[str],
    values: np.ndarray | None,
    eligible: np.ndarray | list[bool],
    chosen: int,
    k: int = 3,
) -> tuple[ActionValue, ...]:
    """The best eligible actions other than the chosen one, by expected value."""
    if values is None:
        return ()
    allowed = eligible if isinstance(eligible, list) else eligible.tolist()
    if allowed.count(True) == allowed[chosen]:  # nothing eligible but the chosen action
        return ()
    value = values.tolist()
    order = sorted(
        (i for i in range(len(value)) if allowed[i] and i != chosen),
        key=lambda i: (value[i] != value[i], -value[i]),  # best first, NaN last
    )
    return tuple(ActionValue(keys[i], value[i]) for i in order[:k])
