"""The objective preview: what to expect from an objective before it goes live.

From the logged history, off-policy: the conversions, spend, contacts and net value the policy
that would serve the objective is expected to bring (its MLflow champion when one is registered
for the objective's id and action space, else the LightGBM greedy policy fitted on the history,
beside the rule-based waterfall served before the first training), each against doing nothing;
the share of the segment the contact policy leaves reachable; and whether a lift of the target's
size can be measured on the holdout before the objective's horizon (a two-proportion test).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from decisioning.actions import ALL_SLOTS
from decisioning.channels import CONTACT_CHANNELS
from decisioning.fatigue import DAY
from decisioning.guardrails import ContactPolicy, ContactPolicySettings
from decisioning.objectives import Objective
from decisioning.settings import Settings
from models.batch import BanditBatch
from models.outcome import RewardModel
from training.dataset import TrainingSet, build_training_set
from training.fit import LearnerSettings, fit_candidates, to_batch
from training.ope import evaluate_policies
from training.pipeline import check_training_set, propensities

ALPHA, POWER = 0.05, 0.8
PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}
QUANTITIES = ("conversion", "spend", "contact", "net_value")
NOTHING = "do_nothing"


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95% bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class PolicyPreview:
    """Off-policy figures of one policy, per decision moment unless named otherwise.

    ``estimates[q][e]`` holds estimator ``e`` (ips, dr) of quantity ``q``: conversion (the
    objective's conversion indicator), spend, contact (1 when a message goes out) and
    net_value (value - cost - fatigue harm). ``lift`` is the relative change of the outcome
    event's rate against doing nothing, in the objective's direction (fewer cancellations is a
    positive lift for a reduce objective); lift and increments use a paired bootstrap.
    """

    policy: str
    model_version: str | None
    estimates: dict[str, dict[str, Interval]]
    lift: Interval
    incremental_conversions_per_1000: Interval
    incremental_net_value: Interval
    contacts_per_customer_30d: float
    spend_per_period: float
    ess: float

    def dr(self, quantity: str) -> Interval:
        """The doubly robust estimate of ``quantity``."""
        return self.estimates[quantity]["dr"]


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


@dataclass(frozen=True)
class Preview:
    """What to expect from an objective before it goes live (see :func:`preview_objective`)."""

    objective_id: str
    objective_version: int
    summary: str
    kind: str
    target_lift: float
    budget: float | None
    budget_period: str
    moments: int
    evaluated: int
    customers: int
    history_days: float
    daily_decisions: float
    source: str
    reachable_moments: float
    reachable_customers: float
    expected: str
    policies: tuple[PolicyPreview, ...]
    nothing: dict[str, Interval]
    power: PowerPlan
    verdict: str
    reason: str
    notes: tuple[str, ...] = field(default_factory=tuple)

    def policy(self, name: str) -> PolicyPreview:
        """The figures of policy ``name``."""
        return next(p for p in self.policies if p.policy == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, JSON-ready (NaN and infinity become None)."""
        return _plain(asdict(self))

    def describe(self) -> str:
        """The preview in a marketer's words, one fact a line."""
        p, pw = self.policy(self.expected), self.power
        rate = _event_rate(self.kind)
        conv, nothing = p.dr("conversion"), self.nothing["conversion"]
        word = "outcome events" if self.kind == "reduce" else "conversions"
        who = _LABELS.get(self.expected, self.expected)
        budget = f" (budget {self.budget:,.0f})" if self.budget is not None else ""
        net = p.dr("net_value")
        lines = [
            f"Preview of {self.objective_id} v{self.objective_version}: {self.summary}",
            f"History: {self.moments:,} decision moments of {self.customers:,} segment customers "
            f"over {self.history_days:.0f} days ({self.daily_decisions:,.0f} a day, from "
            f"{self.source}); the latest {self.evaluated:,} are evaluated off-policy.",
            f"Reachable: {self.reachable_moments:.0%} of decision moments and "
            f"{self.reachable_customers:.0%} of the segment's customers have at least one "
            "contact the contact policy allows.",
            f"Expected with {who}:",
            f"  {word}: {_pct(rate(conv.value))} of decisions vs {_pct(rate(nothing.value))} doing "
            f"nothing; lift {p.lift.value:+.1%} [{p.lift.low:+.1%}, {p.lift.high:+.1%}], "
            f"target {self.target_lift:+.0%}",
            f"  contacts: {p.dr('contact').value:.2f} per decision, "
            f"{p.contacts_per_customer_30d:.1f} per customer per 30 days",
            f"  spend: {p.dr('spend').value:.4f} per decision, {p.spend_per_period:,.0f} per "
            f"{self.budget_period}{budget}",
            f"  net value: {net.value:+.3f} per decision [{net.low:+.3f}, {net.high:+.3f}], "
            f"{p.incremental_net_value.value:+.3f} more than doing nothing",
        ]
        left = "no horizon set" if pw.days_left is None else f"{pw.days_left} days left"
        if math.isfinite(pw.days_needed):
            per = pw.holdout_customer_days / max(pw.holdout_customers, 1.0)
            lines.append(
                f"Measuring a {self.target_lift:.0%} lift with a {pw.holdout_fraction:.0%} "
                f"holdout (alpha {ALPHA}, power {POWER}) takes {pw.holdout_decisions:,.0f} "
                f"held-out decisions: {pw.holdout_customers:,.0f} held-out customers for "
                f"{per:,.0f} days, {pw.days_needed:,.0f} days with the attribution window; "
                f"{left}."
            )
        lines.append(f"Verdict: target {self.verdict}: {self.reason}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


_LABELS = {
    "champion": "the registered champion",
    "lightgbm_greedy": "the LightGBM greedy policy fitted on the history",
}


def _pct(share: float) -> str:
    """A rate for reading: estimates a little below 0 or above 1 are shown at the bound."""
    return f"{min(max(share, 0.0), 1.0):.2%}"


def _event_rate(kind: str) -> Any:
    """Conversion share -> rate of the outcome event (a reduce objective converts by its absence)."""
    return (lambda x: 1.0 - x) if kind == "reduce" else (lambda x: x)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------
# The computation


def preview_objective(
    objective: Objective,
    *,
    customers: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    settings: Settings,
    seed: int = 0,
    today: date | None = None,
    n_bootstrap: int = 200,
    test_fraction: float = 0.25,
) -> Preview:
    """Estimate, from the history tables, what ``objective`` will bring once live.

    The decision moments are the history's decisions for the objective (every logged decision
    when none was logged for it yet), replayed over all channels and slots so that a logged
    action the objective does not allow counts as one its policy never takes. Learners are
    fitted on the earlier ``1 - test_fraction`` of the moments and evaluated on the rest.
    Raises ``LearningError`` when the history holds too few usable decisions.
    """
    notes: list[str] = []
    own = contacts["objective"].fillna("").astype(str) == objective.id
    source = "its own logged decisions"
    if not own.any():
        contacts = contacts.assign(objective="")
        source = "all logged decisions"
    wide = objective.model_copy(update={"channels": CONTACT_CHANNELS, "slots": ALL_SLOTS})
    contact_settings = ContactPolicySettings().merged(objective.guardrails)
    data = build_training_set(
        customers=customers, contacts=contacts, events=events, objective=wide,
        policy=ContactPolicy(contact_settings), seed=seed,
    )  # fmt: skip
    data.report["kind"] = objective.kind
    notes += check_training_set(data)
    allowed = np.isin(np.array(data.actions.keys), objective.action_space().keys)
    data = replace(data, eligible=data.eligible & allowed)
    span_days = max(float(data.ts.max() - data.ts.min()) / DAY, 1.0)
    n_customers = len(np.unique(data.customer_ids))
    daily = len(data) / span_days
    reach = data.eligible[:, 1:].any(axis=1)
    reached = pd.Series(reach).groupby(data.customer_ids).any()

    train_set, test_set = data.split_by_time(test_fraction)
    pscore_train, info = propensities(train_set, seed)
    pscore_test = test_set.pscore
    if "estimator" in info:
        est = info["estimator"].pscore(test_set.customer, test_set.action)
        pscore_test = np.where(np.isnan(pscore_test), est, pscore_test)
        notes.append(f"{info['estimated_share']:.0%} of propensities were not logged: estimated")
    train, test = to_batch(train_set, pscore_train), to_batch(test_set, pscore_test)
    candidates = fit_candidates(train, LearnerSettings(seed=seed), with_vw=False)
    dists = {
        name: candidates.policies[name].action_distributions(test)  # type: ignore[attr-defined]
        for name in ("lightgbm_greedy", "waterfall", NOTHING)
    }
    versions: dict[str, str | None] = {"lightgbm_greedy": None, "waterfall": None}
    champion = _champion(objective, settings, notes)
    expected = "lightgbm_greedy"
    if champion is not None:
        versions = {"champion": champion[0], **versions}
        dists = {"champion": _scatter(champion[1], test, objective), **dists}
        expected = "champion"
    else:
        notes.append("no champion registered for this objective: the LightGBM greedy policy is "
                     "fitted on the history; the waterfall rule serves until the first training")  # fmt: skip

    rows = np.arange(len(test))
    q_conv = _conversion_model(train, train_set, test, seed)
    q_net = candidates.reward_model.predict(test) - test.costs
    contact = np.broadcast_to((np.arange(test.n_actions) > 0).astype(float), test.costs.shape)
    # Spend and net value at the objective's prices, whatever the history paid.
    price = test.costs[rows, test_set.action]
    logged = {
        "conversion": (test_set.rewards.conversion, q_conv),
        "spend": (price, test.costs),
        "contact": ((test_set.action > 0).astype(float), contact),
        "net_value": (test_set.reward + test_set.rewards.cost - price, q_net),
    }
    tables = {
        q: evaluate_policies(
            reward=r, action=test_set.action, pscore=pscore_test, policies=dists,
            estimated_rewards=np.ascontiguousarray(qq), estimators=("ips", "dr"),
            n_bootstrap=n_bootstrap, random_state=seed,
        )
        for q, (r, qq) in logged.items()
    }  # fmt: skip
    terms = {
        (name, q): _dr_rows(r, test_set.action, pscore_test, dist, qq, rows)
        for name, dist in dists.items()
        for q, (r, qq) in logged.items()
        if q in ("conversion", "net_value")
    }
    draws = dict(
        zip(
            terms,
            _bootstrap_means(np.vstack(list(terms.values())), n_bootstrap, seed).T,
            strict=True,
        )
    )
    per_customer_30d = 30.0 * daily / max(n_customers, 1)
    period = PERIOD_DAYS[objective.budget_period] * daily
    previews = []
    for name in dists:
        if name == NOTHING:
            continue
        est = {q: {e: _interval(tables[q].get(name, e)) for e in ("ips", "dr")} for q in QUANTITIES}

        def paired(q: str, stat: Any, name: str = name) -> Interval:
            a, b = (name, q), (NOTHING, q)
            return _paired(terms[a].mean(), terms[b].mean(), draws[a], draws[b], stat)

        previews.append(
            PolicyPreview(
                policy=name,
                model_version=versions.get(name),
                estimates=est,
                lift=paired("conversion", _lift(objective.kind)),
                incremental_conversions_per_1000=paired("conversion", lambda a, b: 1000 * (a - b)),
                incremental_net_value=paired("net_value", lambda a, b: a - b),
                contacts_per_customer_30d=est["contact"]["dr"].value * per_customer_30d,
                spend_per_period=est["spend"]["dr"].value * period,
                ess=float(tables["net_value"].get(name, "dr").ess),
            )
        )
    nothing = {q: _interval(tables[q].get(NOTHING, "dr")) for q in QUANTITIES}
    baseline = _event_rate(objective.kind)(nothing["conversion"].value)
    today = today or datetime.now(UTC).date()
    power = power_plan(
        baseline_rate=baseline,
        target_lift=objective.target_lift,
        kind=objective.kind,
        holdout_fraction=objective.holdout_fraction,
        daily_decisions=daily,
        segment_customers=n_customers,
        window_days=objective.attribution_window_days,
        days_left=None if objective.horizon is None else (objective.horizon - today).days,
    )
    best = next(p for p in previews if p.policy == expected)
    verdict, reason = _verdict(best.lift, objective.target_lift, power)
    return Preview(
        objective_id=objective.id,
        objective_version=objective.version,
        summary=objective.describe(),
        kind=objective.kind,
        target_lift=objective.target_lift,
        budget=objective.budget_per_period,
        budget_period=objective.budget_period,
        moments=len(data),
        evaluated=len(test_set),
        customers=n_customers,
        history_days=span_days,
        daily_decisions=daily,
        source=source,
        reachable_moments=float(reach.mean()),
        reachable_customers=float(reached.mean()),
        expected=expected,
        policies=tuple(previews),
        nothing=nothing,
        power=power,
        verdict=verdict,
        reason=reason,
        notes=tuple(notes),
    )


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


def _verdict(lift: Interval, target: float, power: PowerPlan) -> tuple[str, str]:
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


def _champion(objective: Objective, settings: Settings, notes: list[str]) -> tuple[str, Any] | None:
    """``(version, policy)`` of the registered champion for the objective's action space."""
    if settings.mlflow_tracking_uri is None and not (settings.data_dir / "mlflow.db").exists():
        return None  # no registry yet, so no champion: skip starting MLflow
    from training.registry import CHAMPION, alias_version, connect, load_policy_bundle

    version = alias_version(connect(settings), objective.id, CHAMPION)
    if version is None:
        return None
    try:
        bundle = load_policy_bundle(objective.id)
    except Exception as err:  # a champion that cannot load does not block the preview
        notes.append(f"the champion (version {version}) could not be loaded: {err}")
        return None
    if tuple(bundle.action_keys) != objective.action_space().keys:
        notes.append("the champion uses another action space than the objective: not previewed")
        return None
    return f"{objective.id}/{version}", bundle.policy


def _scatter(policy: Any, batch: BanditBatch, objective: Objective) -> np.ndarray:
    """The distributions of a policy of the objective's action space, over ``batch``'s actions."""
    keys = list(batch.actions.keys)
    cols = np.array([keys.index(k) for k in objective.action_space().keys])
    narrow = replace(
        batch, actions=objective.action_space(), action_features=batch.action_features[:, cols],
        eligible=batch.eligible[:, cols], costs=batch.costs[:, cols],
        action=None, reward=None, pscore=None,
    )  # fmt: skip
    out = np.zeros((len(batch), len(keys)))
    out[:, cols] = policy.action_distributions(narrow)
    return out


def _conversion_model(
    train: BanditBatch, train_set: TrainingSet, test: BanditBatch, seed: int
) -> np.ndarray:
    """Predicted conversion probability of every action on ``test`` (a constant if none vary)."""
    conversion = train_set.rewards.conversion
    if conversion.min() == conversion.max():
        return np.full(test.costs.shape, float(conversion.mean()))
    model = RewardModel(task="binary", random_state=seed)
    return model.fit(replace(train, reward=conversion)).predict(test)


def _dr_rows(
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


def _lift(kind: str) -> Any:
    """Relative lift of the outcome against doing nothing, from conversion shares a and b."""
    if kind == "reduce":  # conversions are non-events: lift = relative fall of the event rate
        return lambda a, b: 1.0 - (1.0 - a) / (1.0 - b)
    return lambda a, b: a / b - 1.0


def _bootstrap_means(matrix: np.ndarray, n_bootstrap: int, seed: int) -> np.ndarray:
    """Means of each row of ``matrix`` (k, n) over resamples of its columns: (n_bootstrap, k).

    Every row is resampled with the same columns, so differences between rows are paired.
    """
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    return np.array([matrix[:, rng.integers(0, n, n)].mean(axis=1) for _ in range(n_bootstrap)])


def _paired(a: float, b: float, draws_a: np.ndarray, draws_b: np.ndarray, stat: Any) -> Interval:
    """``stat(a, b)`` with the percentile interval of ``stat`` over the paired draws."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(stat(np.float64(a), np.float64(b)))
        values = stat(draws_a, draws_b)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return Interval(value, float("nan"), float("nan"))
    low, high = np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2])
    return Interval(value, float(low), float(high))


def _interval(estimate: Any) -> Interval:
    return Interval(float(estimate.value), float(estimate.ci_low), float(estimate.ci_high))


# ---------------------------------------------------------------------------------------------
# The command line


def run_preview(
    settings: Settings, objective_file: Path, data: Path, console: Any
) -> list[Preview]:
    """``decisioning preview``: preview every objective of a YAML file on a history directory."""
    from rich.table import Table

    from decisioning.history import load_history
    from decisioning.objectives import load_objectives_yaml
    from decisioning.segment import field_catalogue

    with console.status(f"loading {data}"):
        history = load_history(data)
    fields = field_catalogue(history.customers)
    out = []
    for objective in load_objectives_yaml(objective_file, fields=fields):
        with console.status(f"previewing {objective.id}"):
            preview = preview_objective(
                objective, customers=history.customers, contacts=history.contacts,
                events=history.events, settings=settings, seed=settings.seed,
            )  # fmt: skip
        rate = _event_rate(preview.kind)
        table = Table(
            "policy", "outcome rate", f"lift (target {preview.target_lift:+.0%})",
            "contacts / decision", "contacts / customer / 30 d",
            f"spend / {preview.budget_period}", "net value / decision",
            title=f"Preview: {objective.id} (off-policy, doubly robust, 95% intervals)",
        )  # fmt: skip
        for p in preview.policies:
            conv, net = p.dr("conversion"), p.dr("net_value")
            lo, hi = sorted((rate(conv.low), rate(conv.high)))
            table.add_row(
                p.policy + ("" if p.model_version is None else f" ({p.model_version})"),
                f"{_pct(rate(conv.value))} [{_pct(lo)}, {_pct(hi)}]",
                f"{p.lift.value:+.1%} [{p.lift.low:+.1%}, {p.lift.high:+.1%}]",
                f"{p.dr('contact').value:.3f}",
                f"{p.contacts_per_customer_30d:.1f}",
                f"{p.spend_per_period:,.0f}",
                f"{net.value:+.3f} [{net.low:+.3f}, {net.high:+.3f}]",
            )
        nothing = preview.nothing
        table.add_row(
            NOTHING, _pct(rate(nothing["conversion"].value)), "-", "0", "0", "0",
            f"{nothing['net_value'].value:+.3f}",
        )  # fmt: skip
        console.print(table)
        console.print(preview.describe())
        out.append(preview)
    return out
