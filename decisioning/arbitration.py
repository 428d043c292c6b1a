"""One voice: when several objectives want the same customer, exactly one decision goes out.

The rule, in order:

1. A contact *qualifies* when its expected net value is positive (an unknown value counts as 0:
   it has not shown it is worth the customer's attention).
2. If any contact qualifies, the winner is the qualifying contact with the highest objective
   priority, then the highest expected value, then the smallest objective id.
3. Otherwise, if any objective chose to do nothing, doing nothing wins; among those the same
   order picks whose decision is recorded.
4. Otherwise (only contacts, none positive, e.g. exploration) the same order picks among them:
   no objective asked for silence, and overruling a policy's exploration would bias its logs.

Only one decision per customer per ``ArbitrationWindow``: once a contact was decided, later
requests within the window get doing nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from decisioning.actions import Action
from decisioning.decision import Decision
from decisioning.errors import InvalidInput

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One objective's proposal for a customer: its chosen action and expected net value."""

    objective_id: str
    priority: int
    action: Action
    expected_value: float | None
    decision: Decision | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.objective_id:
            raise InvalidInput("a candidate needs an objective id")
        if self.expected_value is not None and math.isnan(self.expected_value):
            raise InvalidInput(f"objective {self.objective_id!r}: expected value is NaN")

    @property
    def is_contact(self) -> bool:
        return not self.action.is_nothing

    @property
    def value(self) -> float:
        """The expected value used for ranking (0.0 when unknown)."""
        return 0.0 if self.expected_value is None else self.expected_value


def _rank(candidate: Candidate) -> tuple[float, float, str]:
    return (-candidate.priority, -candidate.value, candidate.objective_id)


def arbitrate(candidates: Sequence[Candidate]) -> Candidate:
    """The one candidate that speaks to the customer (see the module docstring for the rule).

    Examples
    --------
    >>> from decisioning.actions import DO_NOTHING
    >>> a = Candidate("winback", 1, Action.from_key("email@now"), 0.4)
    >>> b = Candidate("upsell", 2, Action.from_key("push@now"), -0.1)
    >>> c = Candidate("onboarding", 0, DO_NOTHING, 0.0)
    >>> arbitrate([a, b, c]).objective_id
    'winback'
    """
    if not candidates:
        raise InvalidInput("arbitration needs at least one candidate")
    ids = [c.objective_id for c in candidates]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise InvalidInput(f"objectives proposed more than once: {', '.join(repeated)}")
    contacts = [c for c in candidates if c.is_contact]
    pool = (
        [c for c in contacts if c.value > 0.0]
        or [c for c in candidates if not c.is_contact]
        or contacts
    )
    return min(pool, key=_rank)


@dataclass(frozen=True, slots=True)
class ArbitrationWindow:
    """How long after a contact decision a customer gets no other one (hours, default 24)."""

    hours: float = 24.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.hours) or self.hours < 0:
            raise InvalidInput(f"arbitration window is {self.hours} hours; it must be 0 or more")

    def recent_decision_blocks(self, last_contact_decision_ts: float | None, now: float) -> bool:
        """Whether a contact decided at ``last_contact_decision_ts`` still holds the customer.

        A decision time after ``now`` (clock skew between workers) blocks as well.
        """
        if last_contact_decision_ts is None:
            return False
        return now - last_contact_decision_ts < self.hours * HOUR
