"""Report, model and health bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from serving.report import ArmStats, Estimate, ObjectiveReport
from serving.schemas.common import ResponseModel


class ArmPublic(ResponseModel):
    """One arm of the lift comparison."""

    decisions: int
    contacts: int = Field(description="decisions that chose to contact the customer")
    rewarded: int = Field(description="decisions with a known outcome")
    conversions: int
    conversion_rate: float | None
    reward_mean: float | None = Field(description="mean net reward per rewarded decision")

    @classmethod
    def of(cls, arm: ArmStats) -> ArmPublic:
        return cls(
            decisions=arm.decisions,
            contacts=arm.contacts,
            rewarded=arm.rewarded,
            conversions=arm.conversions,
            conversion_rate=arm.conversion_rate,
            reward_mean=arm.reward_mean,
        )


class EstimatePublic(ResponseModel):
    """A point estimate with its confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    level: float

    @classmethod
    def of(cls, estimate: Estimate | None) -> EstimatePublic | None:
        if estimate is None:
            return None
        return cls(
            value=estimate.value,
            ci_low=estimate.ci_low,
            ci_high=estimate.ci_high,
            level=estimate.level,
        )


class DecisionTotals(ResponseModel):
    total: int
    treated: int
    holdout: int


class ProgressPublic(ResponseModel):
    """Where the objective stands against its target lift."""

    status: Literal["on track", "behind", "reached", "not enough data"]
    target_lift: float
    reason: str


class ReportPublic(ResponseModel):
    """An objective's results: decisions, contacts, spend, and lift against the holdout."""

    objective_id: str
    objective_version: int
    kind: str
    decisions: DecisionTotals
    decisions_by_action: dict[str, int]
    treated: ArmPublic
    holdout: ArmPublic
    contacts_by_channel: dict[str, int] = Field(description="contacts reported sent, by channel")
    cost_by_channel: dict[str, float]
    spend: float = Field(description="budget reserved by the objective (or contacts' cost)")
    spend_by_period: dict[str, float]
    lift: EstimatePublic | None = Field(
        description="relative lift of the conversion rate, treated vs holdout (reduce "
        "objectives: relative reduction of the outcome rate)"
    )
    reward_difference: EstimatePublic | None = Field(
        description="mean net reward per decision, treated minus holdout"
    )
    progress: ProgressPublic

    @classmethod
    def of(cls, report: ObjectiveReport) -> ReportPublic:
        return cls(
            objective_id=report.objective_id,
            objective_version=report.objective_version,
            kind=report.kind,
            decisions=DecisionTotals(
                total=report.decisions,
                treated=report.treated.decisions,
                holdout=report.holdout.decisions,
            ),
            decisions_by_action=report.decisions_by_action,
            treated=ArmPublic.of(report.treated),
            holdout=ArmPublic.of(report.holdout),
            contacts_by_channel=report.contacts_by_channel,
            cost_by_channel=report.cost_by_channel,
            spend=report.spend,
            spend_by_period=report.spend_by_period,
            lift=EstimatePublic.of(report.lift),
            reward_difference=EstimatePublic.of(report.reward_difference),
            progress=ProgressPublic(
                status=report.status,  # type: ignore[arg-type]
                target_lift=report.target_lift,
                reason=report.status_reason,
            ),
        )


class ModelPublic(ResponseModel):
    """The policy serving one objective."""

    objective_id: str
    objective_status: str
    model_version: str
    fallback: bool


class ModelsPublic(ResponseModel):
    """The policies served, per objective."""

    source: str = Field(description="where policies come from (the policy source's class)")
    models: list[ModelPublic]
    loaded: dict[str, Any] = Field(
        default_factory=dict, description="what the policy source reports it has loaded"
    )
    errors: dict[str, str] = Field(
        default_factory=dict, description="objectives whose champion could not be loaded"
    )


class HealthPublic(ResponseModel):
    status: Literal["ok"]


class ReadyPublic(ResponseModel):
    """Whether the service can decide: store reachable and objectives loaded."""

    ready: bool
    store: str
    objectives: int = Field(description="objectives stored")
    active_objectives: int
    detail: str | None = None
