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
from training.power import (
    ALPHA,
    POWER,
    Interval,
    PowerPlan,
    bootstrap_means,
    dr_rows,
    interval_of,
    lift_statistic,
    paired_interval,
    power_plan,
    verdict_of,
)

PERIOD_DAYS = {"day": 1.0, "week": 7.0, "month": 30.0}
QUANTITIES = ("conversion", "spend", "contact", "net_value")
NOTHING = "do_nothing"


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
        rate = event_rate(self.kind)
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
            f"  {word}: {percent(rate(conv.value))} of decisions vs {percent(rate(nothing.value))} doing "
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


def percent(share: float) -> str:
    """A rate for reading: estimates a little below 0 or above 1 are shown at the bound."""
    return f"{min(max(share, 0.0), 1.0):.2%}"


def event_rate(kind: str) -> Any:
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
        (name, q): dr_rows(r, test_set.action, pscore_test, dist, qq, rows)
        for name, dist in dists.items()
        for q, (r, qq) in logged.items()
        if q in ("conversion", "net_value")
    }
    draws = dict(
        zip(
            terms,
            bootstrap_means(np.vstack(list(terms.values())), n_bootstrap, seed).T,
            strict=True,
        )
    )
    per_customer_30d = 30.0 * daily / max(n_customers, 1)
    period = PERIOD_DAYS[objective.budget_period] * daily
    previews = []
    for name in dists:
        if name == NOTHING:
            continue
        est = {
            q: {e: interval_of(tables[q].get(name, e)) for e in ("ips", "dr")} for q in QUANTITIES
        }

        def paired(q: str, stat: Any, name: str = name) -> Interval:
            a, b = (name, q), (NOTHING, q)
            return paired_interval(terms[a].mean(), terms[b].mean(), draws[a], draws[b], stat)

        previews.append(
            PolicyPreview(
                policy=name,
                model_version=versions.get(name),
                estimates=est,
                lift=paired("conversion", lift_statistic(objective.kind)),
                incremental_conversions_per_1000=paired("conversion", lambda a, b: 1000 * (a - b)),
                incremental_net_value=paired("net_value", lambda a, b: a - b),
                contacts_per_customer_30d=est["contact"]["dr"].value * per_customer_30d,
                spend_per_period=est["spend"]["dr"].value * period,
                ess=float(tables["net_value"].get(name, "dr").ess),
            )
        )
    nothing = {q: interval_of(tables[q].get(NOTHING, "dr")) for q in QUANTITIES}
    baseline = event_rate(objective.kind)(nothing["conversion"].value)
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
    verdict, reason = verdict_of(best.lift, objective.target_lift, power)
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
