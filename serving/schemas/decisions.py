"""Decision bodies: the request for a decision, the decision, its confirmation and outcome."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Self

import orjson
from pydantic import ConfigDict, Field, model_validator

from decisioning.actions import Action, Slot
from decisioning.channels import Channel
from decisioning.decision import Decision
from decisioning.store import LoggedDecision
from serving.engine import Confirmation
from serving.schemas.common import (
    MAX_AMOUNT,
    Id,
    Moment,
    RequestContext,
    RequestModel,
    ResponseModel,
    Slug,
)


class DecisionRequest(RequestModel):
    """Ask what to do for one customer now (or at ``as_of``)."""

    customer_id: Id = Field(description="an unknown customer gets a cold-start decision")
    objective: Slug | None = Field(
        default=None, description="decide for this objective only; default: arbitrate all"
    )
    context: RequestContext = Field(default_factory=dict)
    as_of: Moment | None = Field(default=None, description="decide as of this moment")


class BatchDecisionRequest(RequestModel):
    """Decisions for a list of customers, or for every customer in an objective's segment."""

    customer_ids: list[Id] | None = Field(
        default=None, min_length=1, description="the customers; default: the objective's segment"
    )
    objective: Slug | None = Field(default=None, description="decide for this objective only")
    context: RequestContext = Field(default_factory=dict)
    as_of: Moment | None = None

    @model_validator(mode="after")
    def _who(self) -> Self:
        if self.customer_ids is None and self.objective is None:
            raise ValueError("give customer_ids, or an objective to decide for its whole segment")
        return self


class ActionPublic(ResponseModel):
    """An action: a channel at a timing slot, or doing nothing (channel ``none``)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)  # instances are shared

    channel: Channel
    slot: Slot | None = Field(description="null when doing nothing")
    key: str = Field(description="e.g. email@today_evening, or none")

    @classmethod
    def of(cls, action: Action | str) -> ActionPublic:
        return _action_public(action if isinstance(action, str) else action.key)


@lru_cache(maxsize=1024)
def _action_public(key: str) -> ActionPublic:
    # one per action key, shared by every response: a decision lists up to 30 blocked actions
    action = Action.from_key(key)
    return ActionPublic(
        channel=action.channel, slot=None if action.is_nothing else action.slot, key=action.key
    )


class AlternativePublic(ResponseModel):
    """An action the policy valued, not chosen."""

    action: ActionPublic
    expected_value: float


class BlockedPublic(ResponseModel):
    """An action a guardrail ruled out, with the rule and the reason."""

    action: ActionPublic
    rule: str
    reason: str


class DecisionPublic(ResponseModel):
    """What to do for the customer, and why."""

    decision_id: str
    customer_id: str
    decided_at: datetime
    action: ActionPublic
    send_at: datetime | None = Field(
        description="when to send, in UTC (after quiet hours; the explanation gives it on the "
        "customer's clock); null: nothing to send"
    )
    objective: str | None = Field(description="the objective that decided; null: none applied")
    objective_version: int | None
    propensity: float = Field(description="probability the policy gave the chosen action")
    model_version: str
    expected_value: float | None = Field(description="expected net value of the chosen action")
    alternatives: list[AlternativePublic]
    blocked: list[BlockedPublic]
    holdout: bool = Field(description="the customer is in the objective's holdout: not contacted")
    fallback: bool = Field(description="decided by the rule-based fallback, not a trained model")
    explanation: str

    @classmethod
    def of(cls, decision: Decision) -> DecisionPublic:
        return cls(
            decision_id=decision.decision_id,
            customer_id=decision.customer_id,
            decided_at=decision.decided_at,
            action=ActionPublic.of(decision.action),
            send_at=decision.send_at,
            objective=decision.objective_id,
            objective_version=decision.objective_version,
            propensity=decision.propensity,
            model_version=decision.model_version,
            expected_value=decision.expected_value,
            alternatives=[
                AlternativePublic(action=ActionPublic.of(a.action), expected_value=a.expected_value)
                for a in decision.alternatives
            ],
            blocked=[
                BlockedPublic(action=ActionPublic.of(b.action), rule=b.rule, reason=b.reason)
                for b in decision.blocked
            ],
            holdout=decision.holdout,
            fallback=decision.fallback,
            explanation=decision.explanation,
        )


def _action_json(key: str) -> dict[str, Any]:
    return _action_public(key).model_dump(mode="json")


_ACTION_JSON = lru_cache(maxsize=1024)(_action_json)


def decision_json(decision: Decision) -> bytes:
    """The JSON of ``DecisionPublic.of(decision)``, written without building the models.

    The hot path of ``POST /v1/decisions`` and of each batch line: a decision carries up to 30
    blocked actions, and validating a model for each costs more than the JSON itself. A test
    holds it equal to the models' JSON.
    """
    action = _ACTION_JSON
    return orjson.dumps(
        {
            "decision_id": decision.decision_id,
            "customer_id": decision.customer_id,
            "decided_at": decision.decided_at,
            "action": action(decision.action.key),
            "send_at": decision.send_at,
            "objective": decision.objective_id,
            "objective_version": decision.objective_version,
            "propensity": float(decision.propensity),
            "model_version": decision.model_version,
            "expected_value": None
            if decision.expected_value is None
            else float(decision.expected_value),
            "alternatives": [
                {"action": action(a.action), "expected_value": float(a.expected_value)}
                for a in decision.alternatives
            ],
            "blocked": [
                {"action": action(b.action), "rule": b.rule, "reason": b.reason}
                for b in decision.blocked
            ],
            "holdout": bool(decision.holdout),
            "fallback": bool(decision.fallback),
            "explanation": decision.explanation,
        },
        option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )


class LoggedDecisionPublic(DecisionPublic):
    """A logged decision, with what became of it."""

    status: str = Field(
        description="scheduled, sent, delivered, suppressed (nothing to send), failed, "
        "cancelled (at send time) or expired"
    )
    status_at: datetime
    reward: float | None
    reward_source: str | None

    @classmethod
    def of_logged(cls, logged: LoggedDecision) -> LoggedDecisionPublic:
        return cls(
            **DecisionPublic.of(logged.decision).model_dump(),
            status=logged.status,
            status_at=logged.status_at,
            reward=logged.reward,
            reward_source=logged.reward_source,
        )


class ConfirmIn(RequestModel):
    """When the orchestrator is about to send (default: now)."""

    at: Moment | None = None


class ConfirmPublic(ResponseModel):
    """Send-time verdict: go, or cancelled with the reason."""

    decision_id: str
    go: bool
    reason: str | None
    status: str

    @classmethod
    def of(cls, confirmation: Confirmation) -> ConfirmPublic:
        return cls(
            decision_id=confirmation.decision_id,
            go=confirmation.go,
            reason=confirmation.reason,
            status=confirmation.status,
        )


class OutcomeIn(RequestModel):
    """An explicit reward for a decision (replaces any attributed one)."""

    reward: float = Field(
        ge=-MAX_AMOUNT,
        le=MAX_AMOUNT,
        description="the decision's net reward, in the objective's currency",
    )
    at: Moment | None = None


class OutcomePublic(ResponseModel):
    """The reward now attached to the decision."""

    decision_id: str
    reward: float
    reward_source: str
    rewarded_at: datetime | None
