"""The decision: what the service did for one customer, with everything needed to learn from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from decisioning.actions import Action


@dataclass(frozen=True, slots=True)
class BlockedAction:
    """An action the contact policy ruled out, with the rule and the reason a marketer reads."""

    action: str
    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class ActionValue:
    """An action and its expected net value (value x uplift - cost - fatigue harm)."""

    action: str
    expected_value: float


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision, do-nothing and holdout included.

    ``distribution`` is the policy's full distribution over ``actions`` (zero on blocked ones),
    ``propensity`` the probability of the chosen action: both are logged for off-policy
    evaluation and the next training run.
    """

    decision_id: str
    customer_id: str
    decided_at: datetime
    objective_id: str | None
    objective_version: int | None
    action: Action
    send_at: datetime | None
    propensity: float
    model_version: str
    actions: tuple[str, ...]
    distribution: tuple[float, ...]
    eligible: tuple[bool, ...]
    expected_value: float | None = None
    alternatives: tuple[ActionValue, ...] = ()
    blocked: tuple[BlockedAction, ...] = ()
    holdout: bool = False
    fallback: bool = False
    explanation: str = ""
    context: dict[str, object] = field(default_factory=dict)

    @property
    def is_contact(self) -> bool:
        return not self.action.is_nothing
