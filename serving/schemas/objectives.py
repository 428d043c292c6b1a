"""Objective bodies: what a marketer sends to create or edit one, and what the API returns.

The create and update bodies check types only; the objective's rules (ranges, the segment
against the customers' fields, value or value-from-event) are the domain's
(:class:`decisioning.objectives.ObjectiveSpec`), applied by the handler, and a broken rule is
a 422 naming the field. Fields left out take the domain's defaults.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from decisioning.actions import Slot
from decisioning.channels import Channel
from decisioning.objectives import Objective
from decisioning.records import EventType
from serving.schemas.common import Line, Paragraph, RequestModel, ResponseModel, Slug

Kind = Literal["increase", "reduce"]
Period = Literal["day", "week", "month"]
Status = Literal["draft", "active", "paused", "archived"]


class OutcomeSchema(RequestModel):
    """The event that counts as a conversion."""

    event_type: EventType
    category: Line | None = Field(default=None, description="only events of this category")
    min_value: float | None = Field(default=None, description="only events worth at least this")


class FatiguePenaltiesSchema(RequestModel):
    """What an unsubscribe or a complaint caused by a contact costs (default 5 and 10)."""

    unsubscribe: float | None = None
    complaint: float | None = None


class _Content(RequestModel):
    """Fields an objective's content may set; None (or absent): the domain's default."""

    description: Paragraph | None = None
    kind: Kind | None = Field(default=None, description="increase (default) or reduce")
    value_per_conversion: float | None = Field(
        default=None,
        description="what one conversion is worth; required unless value_from_event, and "
        "always for a reduce objective",
    )
    value_from_event: bool | None = Field(
        default=None,
        description="take the conversion's value from the outcome event (increase objectives)",
    )
    attribution_window_days: float | None = Field(default=None, description="default 7")
    segment: Paragraph | None = Field(
        default=None,
        description='who the objective is for, e.g. plan == "basic" and tenure_days < 90',
    )
    target_lift: float | None = Field(default=None, description="0.1 = +10% (default)")
    horizon: date | None = None
    budget_per_period: float | None = None
    budget_period: Period | None = Field(default=None, description="month (default)")
    holdout_fraction: float | None = Field(default=None, description="0.1 (default)")
    priority: int | None = Field(default=None, description="higher wins arbitration; default 0")
    channels: list[Channel] | None = Field(default=None, description="default: every channel")
    slots: list[Slot] | None = Field(default=None, description="default: every timing slot")
    channel_costs: dict[Channel, float] | None = None
    fatigue_penalties: FatiguePenaltiesSchema | None = None
    guardrails: dict[str, Any] | None = Field(
        default=None, description="overrides of the contact policy settings (caps, quiet hours...)"
    )


class ObjectiveCreate(_Content):
    """A new objective."""

    id: Slug | None = Field(default=None, description="default: the slug of the name")
    name: Line = Field(min_length=1)
    outcome: OutcomeSchema
    status: Literal["draft", "active"] = "draft"

    def content(self) -> dict[str, Any]:
        """The fields given, as the domain's objective fields (absent ones left out)."""
        data = self.model_dump(exclude_none=True, exclude={"id", "status"})
        return _clean(data)


class ObjectiveUpdate(_Content):
    """An edit: only the fields given change (null sets an optional field back to none)."""

    name: Line | None = None
    outcome: OutcomeSchema | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the caller set, as domain changes."""
        return _clean(self.model_dump(exclude_unset=True))


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """Nested schema values with their unset (None) entries left to the domain's defaults."""
    for key in ("outcome", "fatigue_penalties"):
        if isinstance(data.get(key), dict):
            data[key] = {k: v for k, v in data[key].items() if v is not None}
    return data


class ObjectivePublic(ResponseModel):
    """A registered objective, one version of it."""

    id: str
    version: int
    status: Status
    name: str
    summary: str = Field(description="the objective in one sentence")
    description: str
    kind: Kind
    outcome: dict[str, Any]
    value_per_conversion: float | None
    value_from_event: bool
    attribution_window_days: float
    segment: str
    target_lift: float
    horizon: date | None
    budget_per_period: float | None
    budget_period: Period
    holdout_fraction: float
    priority: int
    channels: list[Channel]
    slots: list[Slot]
    channel_costs: dict[str, float]
    fatigue_penalties: dict[str, float]
    guardrails: dict[str, Any]
    created_at: datetime
    updated_at: datetime | None

    @classmethod
    def of(cls, objective: Objective) -> ObjectivePublic:
        return cls.model_validate(
            {**objective.model_dump(mode="json"), "summary": objective.describe()}
        )
