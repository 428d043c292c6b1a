"""An objective's report: what was decided, sent and spent, and the lift against the holdout.

The lift compares the treated arm (customers outside the holdout, whatever the policy chose for
them, do-nothing included) with the holdout arm (never contacted for the objective): an
intention-to-treat comparison, so it measures the policy, not only its messages. Each logged
decision is one unit; only decisions with a reward (attributed by the reward job, or reported
explicitly) count in the rates.

A rewarded decision is a conversion when its reward plus the cost of its action is positive:
the reward job writes ``value x conversion - cost - fatigue harm``, so adding the cost back
leaves the conversion value (a conversion that also caused an unsubscribe may be missed).
For a ``reduce`` objective a conversion is the outcome *not* happening, and the lift is the
relative reduction of the outcome rate.

The confidence interval of the relative lift uses the delta method on the log of the rate
ratio; the one of the reward difference the normal approximation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from decisioning.objectives import Objective
from decisioning.store import ChannelSpend, LoggedDecision

#: z of a two-sided 95% interval
Z95 = 1.959963984540054
ON_TRACK, BEHIND, REACHED, NOT_ENOUGH = "on track", "behind", "reached", "not enough data"


@dataclass(frozen=True, slots=True)
class ArmStats:
    """One arm of the comparison: its decisions, rewards and conversions."""

    decisions: int = 0
    contacts: int = 0
    rewarded: int = 0
    conversions: int = 0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0

    @property
    def conversion_rate(self) -> float | None:
        return self.conversions / self.rewarded if self.rewarded else None

    @property
    def reward_mean(self) -> float | None:
        return self.reward_sum / self.rewarded if self.rewarded else None

    @property
    def reward_variance(self) -> float | None:
        """Sample variance of the rewards (None below two rewarded decisions)."""
        if self.rewarded < 2:
            return None
        mean = self.reward_sum / self.rewarded
        return max(0.0, (self.reward_sq_sum - self.rewarded * mean * mean) / (self.rewarded - 1))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate and its confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    level: float = 0.95


@dataclass(frozen=True, slots=True)
class ObjectiveReport:
    """Everything the report endpoint shows for one objective."""

    objective_id: str
    objective_version: int
    kind: str
    target_lift: float
    treated: ArmStats
    holdout: ArmStats
    decisions_by_action: dict[str, int] = field(default_factory=dict)
    contacts_by_channel: dict[str, int] = field(default_factory=dict)
    cost_by_channel: dict[str, float] = field(default_factory=dict)
    spend_by_period: dict[str, float] = field(default_factory=dict)
    lift: Estimate | None = None
    reward_difference: Estimate | None = None
    status: str = NOT_ENOUGH
    status_reason: str = ""

    @property
    def decisions(self) -> int:
        return self.treated.decisions + self.holdout.decisions

    @property
    def spend(self) -> float:
        """Money committed by the objective: the budget reservations, else the contacts' cost."""
        if self.spend_by_period:
            return float(sum(self.spend_by_period.values()))
        return float(sum(self.cost_by_channel.values()))


def is_conversion(logged: LoggedDecision, objective: Objective) -> bool | None:
    """Whether the rewarded decision converted (None without a reward); see the module doc."""
    if logged.reward is None:
        return None
    return logged.reward + objective.cost_of(logged.decision.action.channel) > 1e-9


def rate_ratio(
    x_t: int, n_t: int, x_h: int, n_h: int, *, z: float = Z95
) -> tuple[float, float, float] | None:
    """Ratio of two rates ``(x_t/n_t) / (x_h/n_h)`` and its delta-method interval on the log.

    None when either rate is 0 (the log is undefined) or either arm is empty.
    """
    if min(n_t, n_h, x_t, x_h) <= 0:
        return None
    a, b = x_t / n_t, x_h / n_h
    se = math.sqrt((1 - a) / x_t + (1 - b) / x_h)
    log_ratio = math.log(a / b)
    return a / b, math.exp(log_ratio - z * se), math.exp(log_ratio + z * se)


def relative_lift(treated: ArmStats, holdout: ArmStats, *, kind: str) -> Estimate | None:
    """Relative lift of the conversion rate (``increase``) or reduction of the outcome rate."""
    if kind == "reduce":
        # a conversion is the outcome avoided: compare the rates of the outcome happening
        ratio = rate_ratio(
            treated.rewarded - treated.conversions,
            treated.rewarded,
            holdout.rewarded - holdout.conversions,
            holdout.rewarded,
        )
        if ratio is None:
            return None
        value, low, high = ratio
        return Estimate(1 - value, 1 - high, 1 - low)
    ratio = rate_ratio(treated.conversions, treated.rewarded, holdout.conversions, holdout.rewarded)
    if ratio is None:
        return None
    value, low, high = ratio
    return Estimate(value - 1, low - 1, high - 1)


def reward_difference(treated: ArmStats, holdout: ArmStats) -> Estimate | None:
    """Mean reward per decision, treated minus holdout, with a normal-approximation interval."""
    var_t, var_h = treated.reward_variance, holdout.reward_variance
    if var_t is None or var_h is None:
        return None
    diff = (treated.reward_sum / treated.rewarded) - (holdout.reward_sum / holdout.rewarded)
    se = math.sqrt(var_t / treated.rewarded + var_h / holdout.rewarded)
    return Estimate(diff, diff - Z95 * se, diff + Z95 * se)


def progress(
    lift: Estimate | None,
    target: float,
    treated: ArmStats,
    holdout: ArmStats,
    *,
    min_rewarded: int,
) -> tuple[str, str]:
    """Where the objective stands against its target lift, and why, in a marketer's words."""
    if min(treated.rewarded, holdout.rewarded) < min_rewarded:
        return NOT_ENOUGH, (
            f"{treated.rewarded} treated and {holdout.rewarded} holdout decisions have an "
            f"outcome; at least {min_rewarded} of each are needed"
        )
    if lift is None:
        return NOT_ENOUGH, "no conversion in one of the arms yet: the lift cannot be estimated"
    pct = f"{lift.value:+.1%} (95% interval {lift.ci_low:+.1%} to {lift.ci_high:+.1%})"
    if lift.ci_low >= target:
        return REACHED, f"lift {pct} is above the {target:.0%} target"
    if lift.value >= target:
        return ON_TRACK, f"lift {pct} meets the {target:.0%} target; not yet conclusive"
    return BEHIND, f"lift {pct} is below the {target:.0%} target"


def build_report(
    objective: Objective,
    decisions: Iterable[LoggedDecision],
    *,
    channel_spend: Iterable[ChannelSpend] = (),
    spend_by_period: Mapping[str, float] | None = None,
    min_rewarded: int = 30,
) -> ObjectiveReport:
    """The report of ``objective`` from its logged decisions and its contacts' spend.

    ``decisions`` should be the objective's decisions (others are ignored); ``min_rewarded``
    is how many rewarded decisions each arm needs before the progress is judged.
    """
    arms = {True: _Arm(), False: _Arm()}
    by_action: dict[str, int] = {}
    for logged in decisions:
        decision = logged.decision
        if decision.objective_id != objective.id:
            continue
        arms[bool(decision.holdout)].add(logged, objective)
        key = decision.action.key
        by_action[key] = by_action.get(key, 0) + 1
    treated, holdout = arms[False].stats(), arms[True].stats()
    lift = relative_lift(treated, holdout, kind=objective.kind)
    status, reason = progress(
        lift, objective.target_lift, treated, holdout, min_rewarded=min_rewarded
    )
    spends = list(channel_spend)
    return ObjectiveReport(
        objective_id=objective.id,
        objective_version=objective.version,
        kind=objective.kind,
        target_lift=objective.target_lift,
        treated=treated,
        holdout=holdout,
        decisions_by_action=dict(sorted(by_action.items())),
        contacts_by_channel={s.channel: s.contacts for s in spends},
        cost_by_channel={s.channel: s.cost for s in spends},
        spend_by_period=dict(spend_by_period or {}),
        lift=lift,
        reward_difference=reward_difference(treated, holdout),
        status=status,
        status_reason=reason,
    )


class _Arm:
    """Running sums of one arm."""

    __slots__ = ("n", "contacts", "rewarded", "conversions", "total", "squares")

    def __init__(self) -> None:
        self.n = self.contacts = self.rewarded = self.conversions = 0
        self.total = self.squares = 0.0

    def add(self, logged: LoggedDecision, objective: Objective) -> None:
        self.n += 1
        self.contacts += int(logged.decision.is_contact)
        converted = is_conversion(logged, objective)
        if converted is None or logged.reward is None:
            return
        self.rewarded += 1
        self.conversions += int(converted)
        self.total += logged.reward
        self.squares += logged.reward * logged.reward

    def stats(self) -> ArmStats:
        return ArmStats(
            self.n, self.contacts, self.rewarded, self.conversions, self.total, self.squares
        )
