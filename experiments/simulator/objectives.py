"""The business objectives the simulated world can be scored on, with their values and penalties."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from decisioning.errors import InvalidInput
from decisioning.records import EventType

#: product categories customers buy in the simulated world
CATEGORIES: tuple[str, ...] = ("essentials", "premium", "accessories")


@dataclass(frozen=True, slots=True)
class SimObjective:
    """What a contact is for, and what its outcome is worth.

    ``increase`` objectives convert when ``event_type`` (of ``category``) happens within
    ``window_days`` of the decision; ``reduce`` objectives convert when it does *not* happen
    (a retained customer). ``value`` is earned per conversion; the penalties are charged per
    unsubscribe and per complaint a contact causes.
    """

    name: str
    kind: Literal["increase", "reduce"]
    event_type: EventType
    category: str | None
    value: float
    window_days: float
    unsubscribe_penalty: float
    complaint_penalty: float

    def __post_init__(self) -> None:
        if self.kind not in ("increase", "reduce"):
            raise InvalidInput(
                f"objective {self.name!r}: kind {self.kind!r} is not increase/reduce"
            )
        if self.kind == "increase" and (
            self.event_type is not EventType.PURCHASE or self.category not in CATEGORIES
        ):
            raise InvalidInput(
                f"objective {self.name!r}: the simulator increases purchases of one of "
                f"{', '.join(CATEGORIES)}, not {self.event_type.value}/{self.category}"
            )
        if self.kind == "reduce" and self.event_type is not EventType.CANCEL:
            raise InvalidInput(
                f"objective {self.name!r}: the simulator reduces cancel events, "
                f"not {self.event_type.value}"
            )
        if self.window_days <= 0:
            raise InvalidInput(f"objective {self.name!r}: window_days must be > 0")
        for name in ("value", "unsubscribe_penalty", "complaint_penalty"):
            if getattr(self, name) < 0:
                raise InvalidInput(f"objective {self.name!r}: {name} must be >= 0")

    @property
    def promoted_category(self) -> str | None:
        """The category a contact for this objective promotes (none for retention)."""
        return self.category if self.kind == "increase" else None


PREMIUM_UPSELL = SimObjective(
    name="premium_upsell",
    kind="increase",
    event_type=EventType.PURCHASE,
    category="premium",
    value=40.0,
    window_days=7.0,
    unsubscribe_penalty=4.0,
    complaint_penalty=15.0,
)
CHURN = SimObjective(
    name="churn",
    kind="reduce",
    event_type=EventType.CANCEL,
    category=None,
    value=100.0,
    window_days=14.0,
    unsubscribe_penalty=4.0,
    complaint_penalty=15.0,
)
OBJECTIVES: dict[str, SimObjective] = {o.name: o for o in (PREMIUM_UPSELL, CHURN)}


def get_objective(objective: SimObjective | str) -> SimObjective:
    """The objective itself, or the built-in one called ``objective``."""
    if isinstance(objective, SimObjective):
        return objective
    try:
        return OBJECTIVES[objective]
    except KeyError:
        known = ", ".join(OBJECTIVES)
        raise InvalidInput(f"unknown objective {objective!r} (expected one of: {known})") from None
