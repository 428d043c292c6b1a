"""Builds what a policy sees for one customer at one moment: the same code offline and online."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from decisioning.actions import ActionSpace
from decisioning.customer_view import CustomerState
from decisioning.features import action_feature_matrix, customer_features
from decisioning.policy import DecisionContext

if TYPE_CHECKING:
    from decisioning.guardrails import ContactPolicy, Eligibility


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
    customer: dict[str, float] | None = None,
) -> tuple[DecisionContext, Eligibility]:
    """The policy's view of ``state`` at ``now`` and the contact policy's verdict on each action.

    Action features use the real send time, after quiet-hours deferral; those of the actions
    the contact policy blocks are zeros (no policy scores them). ``customer`` takes the
    customer's features when the caller has them already.
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
    if customer is None:
        customer = customer_features(state, now)
    rows = action_feature_matrix(
        state, actions.actions, now, customer, eligibility.send_at, eligibility.eligible
    )
    context = context_of(
        state, actions=actions, now=now, customer=customer, action_features=rows,
        eligible=eligibility.eligible, request=request, costs=costs,
    )  # fmt: skip
    return context, eligibility


def context_of(
    state: CustomerState,
    *,
    actions: ActionSpace,
    now: float,
    customer: dict[str, float],
    action_features: np.ndarray,
    eligible: np.ndarray,
    request: Mapping[str, Any] | None,
    costs: np.ndarray,
) -> DecisionContext:
    """The context of ``state`` from features already computed (one customer of a chunk)."""
    return DecisionContext(
        customer_id=state.customer_id,
        now=now,
        actions=actions,
        customer=customer,
        attributes=dict(state.attributes),
        action_features=action_features,
        eligible=eligible,
        request=dict(request or {}),
        costs=costs,
    )
