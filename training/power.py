"""How sure the objective preview can be: intervals of the lift, and the holdout's power.

The paired bootstrap of per-decision doubly robust terms gives the lift and increments against
doing nothing their intervals; the two-proportion power calculation says how many held-out
decisions, customers and days measuring a lift of the target's size takes; the verdict weighs
the two against the objective's target and horizon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

ALPHA, POWER = 0.05, 0.8


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class PowerPlan:
    """What the holdout needs to measure a lift of the target's size (two-proportion test).

    Rates are of the outcome event per decision (for a reduce objective, the event to avoid).
    ``days_needed`` is the days of decisions the test needs plus the attribution window;
    it is infinite without a holdout or without a baseline rate.
    """

    baseline_rate: float
    target_rate: float
    holdout_fraction: float
    holdout_decisions: float
    treated_decisions: float
    holdout_customers: float
    holdout_customer_days: float
    days_needed: float
    days_left: int | None
    measurable_in_time: bool | None


def power_plan(
    *,
    baseline_rate: float,
    target_lift: float,
    kind: str,
    holdout_fraction: float,
    daily_decisions: float,
    segment_customers: int,
    window_days: float,
    days_left: int | None,
    alpha: float = ALPHA,
    power: float = POWER,
) -> PowerPlan:
    """Decisions, customers and days a holdout needs to detect ``target_lift`` (two-sided test).

    The unequal-groups sample size of a two-proportion z-test: held-out decisions at rate
    ``baseline_rate`` against ``(1 - h) / h`` times as many treated ones at the target rate.
    """
    p0 = baseline_rate
    p1 = min(p0 * (1 - target_lift if kind == "reduce" else 1 + target_lift), 1.0)
    h = holdout_fraction
    inf = float("inf")
    if h <= 0 or not 0 < p0 < 1 or p1 == p0 or daily_decisions <= 0:
        n_h = inf
    else:
        k = (1 - h) / h
        z_a, z_b = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)
        pbar = (p0 + k * p1) / (1 + k)
        root = z_a * math.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * math.sqrt(
            p0 * (1 - p0) + p1 * (1 - p1) / k
        )
        n_h = math.ceil(root**2 / (p1 - p0) ** 2)
    finite = math.isfinite(n_h)
    per_customer_day = daily_decisions / max(segment_customers, 1)
    days = n_h / (h * daily_decisions) + window_days if finite else inf
    return PowerPlan(
        baseline_rate=p0,
        target_rate=p1,
        holdout_fraction=h,
        holdout_decisions=n_h,
        treated_decisions=n_h * (1 - h) / h if finite else inf,
        holdout_customers=h * segment_customers,
        holdout_customer_days=n_h / per_customer_day if finite else inf,
        days_needed=days,
        days_left=days_left,
        measurable_in_time=None if days_left is None else bool(days <= days_left),
    )


def verdict_of(lift: Interval, target: float, power: PowerPlan) -> tuple[str, str]:
    """likely / uncertain / unlikely, and why, from the expected lift and the power plan."""
    if math.isinf(power.days_needed):
        why = "no holdout" if power.holdout_fraction <= 0 else "no baseline outcome rate"
        return "not measurable", f"the lift cannot be measured ({why})"
    timing = (
        f"measurable in {power.days_needed:,.0f} days"
        if power.days_left is None
        else f"{power.days_needed:,.0f} days to measure, {power.days_left} left"
    )
    if power.measurable_in_time is False:
        return "unlikely", f"{timing}: not before the horizon"
    if lift.high < target:
        return "unlikely", f"expected lift {lift.value:+.1%}, even its upper bound is below target"
    if lift.value >= target and lift.low > 0:
        return "likely", f"expected lift {lift.value:+.1%} reaches the target; {timing}"
    return (
        "uncertain",
        f"expected lift {lift.value:+.1%} [{lift.low:+.1%}, {lift.high:+.1%}]; {timing}",
    )


def dr_rows(
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    dist: np.ndarray,
    q: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """Per-decision doubly robust terms: their mean is the DR estimate."""
    w = dist[rows, action] / pscore
    return np.einsum("ij,ij->i", dist, q) + w * (reward - q[rows, action])


def lift_statistic(kind: str) -> Any:
    """Relative lift of the outcome against doing nothing, from conversion shares a and b."""
    if kind == "reduce":  # conversions are non-events: lift = relative fall of the event rate
        return lambda a, b: 1.0 - (1.0 - a) / (1.0 - b)
    return lambda a, b: a / b - 1.0


def bootstrap_means(matrix: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Means of each row of ``matrix`` (k, n) over resamples of its columns: (n_bootstrap, k).

    Every row is resampled with the same columns, so differences between rows are paired.
    """
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    return np.array([matrix[:, rng.integers(0, n, n)].mean(axis=1) for _ in range(n_bootstrap)])


def paired_interval(
    a: float, b: float, draws_a: np.ndarray, draws_b: np.ndarray, stat: Any
) -> Interval:
    """``stat(a, b)`` with the percentile interval of ``stat`` over the paired draws."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(stat(np.float64(a), np.float64(b)))
        values = stat(draws_a, draws_b)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(value, float("nan"), float("nan"))
    low, high = np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2])
    return Interval(value, float(low), float(high))


def interval_of(estimate: Any) -> Interval:
    """An estimator's result (value and 95% bounds) as an :class:`Interval`."""
    return Interval(float(estimate.value), float(estimate.ci_low), float(estimate.ci_high))
