"""Builds what a policy sees for one customer at one moment: the same code offline and online."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from decisioning.actions import ActionSpace, send_at, zone
from decisioning.customer_view import CustomerState
from decisioning.features import action_feature_rows, customer_features
from decisioning.policy import DecisionContext

if TYPE_CHECKING:
    from decisioning.guardrails import ContactPolicy, Eligibility


def slot_send_times(actions: ActionSpace, now: float, timezone: str) -> np.ndarray:
    """When each action's slot sends, before any quiet-hours deferral (do nothing: ``now``)."""
    moment = datetime.fromtimestamp(now, zone("UTC"))
    by_slot: dict[Any, float] = {}
    out = np.empty(len(actions), dtype=float)
    for i, action in enumerate(actions):
        if action.is_nothing:
            out[i] = now
            continue
        ts = by_slot.get(action.slot)
        if ts is None:
            ts = by_slot[action.slot] = send_at(action.slot, moment, timezone).timestamp()
        out[i] = ts
    return out


def build_context(
    state: CustomerState,
    *,
    actions: ActionSpace,
    now: float,
    policy: ContactPolicy,
    costs: np.ndarray,
    remaining_budget: float | None = None,
    promoted_category: str | None = None,
    pending: Sequence[float] = (),
    request: Mapping[str, Any] | None = None,
) -> tuple[DecisionContext, Eligibility]:
    """The policy's view of ``state`` at ``now`` and the contact policy's verdict on each action.

    Action features use the real send time (after quiet-hours deferral) where the action is
    allowed, and the slot's own time where it is blocked (a logged action may have been taken
    under another contact policy, and still needs its features to be learnt from).
    """
    eligibility = policy.evaluate(
        state,
        actions,
        now,
        costs=costs,
        remaining_budget=remaining_budget,
        promoted_category=promoted_category,
        pending=pending,
    )
    customer = customer_features(state, now)
    raw = slot_send_times(actions, now, state.timezone)
    times = np.where(np.isfinite(eligibility.send_at), eligibility.send_at, raw)
    rows = action_feature_rows(state, actions.actions, now, customer, times.tolist())
    context = DecisionContext(
        customer_id=state.customer_id,
        now=now,
        actions=actions,
        customer=customer,
        attributes=dict(state.attributes),
        action_features=rows,
        eligible=eligibility.eligible,
        request=dict(request or {}),
        costs=costs,
    )
    return context, eligibility
