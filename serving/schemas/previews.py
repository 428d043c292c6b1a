"""The objective preview's body: estimates before launch, in figures and in words."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from serving.schemas.common import ResponseModel


class PreviewPublic(ResponseModel):
    """What to expect from an objective before it goes live (off-policy, from the log)."""

    objective_id: str
    objective_version: int
    verdict: str = Field(description="whether the target looks reachable within the horizon")
    reason: str
    description: list[str] = Field(description="the preview in a marketer's words, a fact a line")
    figures: dict[str, Any] = Field(
        description="every estimate with its interval: per policy, doing nothing, reach, power"
    )

    @classmethod
    def of(cls, preview: Any) -> PreviewPublic:
        return cls(
            objective_id=preview.objective_id,
            objective_version=preview.objective_version,
            verdict=preview.verdict,
            reason=preview.reason,
            description=preview.describe().splitlines(),
            figures=preview.to_dict(),
        )
