"""The figures of each arm: value against the ground truth, lift against the holdout, pressure.

Values come from the ledger, where every decision carries the world's expected net value of the
action taken (``truth_chosen``), of doing nothing and of the best eligible action. The lift and
the progress towards the objective's target come from the objective's report, the same
computation the API's report endpoint serves (:func:`serving.report.build_report`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from decisioning.channels import CONTACT_CHANNELS
from decisioning.fatigue import DAY
from decisioning.records import EventType
from experiments.closed_loop.ledger import CANCELLED, NOTHING, SENT
from experiments.simulator import capture_share
from experiments.simulator.organic import EVENT_CODE
from serving.report import ObjectiveReport


@dataclass(frozen=True)
class ArmSummary:
    """One arm's figures over the whole experiment."""

    arm: str
    decisions: int
    holdout_decisions: int
    net_value: float
    incremental_value: float
    capture: float
    realised_reward: float
    conversions: int
    treated_conversion_rate: float | None
    holdout_conversion_rate: float | None
    lift: float | None
    lift_low: float | None
    lift_high: float | None
    status: str
    status_reason: str
    spend: float
    contacts: int
    contacts_per_customer: float
    unsubscribes: int
    complaints: int
    nothing_share: float
    cancelled: int
    regret: float
    violations: int
    violations_by_rule: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def harm_events(events: dict[str, np.ndarray], *, since: float) -> dict[str, int]:
    """Unsubscribes and complaints in the world's event log from ``since`` on."""
    after = events["ts"] >= since
    return {
        "unsubscribes": int((after & (events["type"] == EVENT_CODE[EventType.UNSUBSCRIBE])).sum()),
        "complaints": int((after & (events["type"] == EVENT_CODE[EventType.COMPLAINT])).sum()),
    }


def incremental_value(ledger: pd.DataFrame) -> float:
    """Ground-truth value of the decisions over doing nothing at the same moments."""
    return float((ledger["truth_chosen"] - ledger["truth_nothing"]).sum())


def summarise(
    arm: str,
    *,
    ledger: pd.DataFrame,
    report: ObjectiveReport,
    harm: dict[str, int],
    customers: int,
    oracle_incremental: float,
    violations: dict[str, int],
) -> ArmSummary:
    """The arm's figures from its ledger, its objective report and its world's harm events."""
    treated = ledger[~ledger["holdout"]]
    sent = ledger["status"] == SENT
    incremental = incremental_value(ledger)
    nothing = treated["status"].isin([NOTHING, CANCELLED])
    lift = report.lift
    return ArmSummary(
        arm=arm,
        decisions=len(ledger),
        holdout_decisions=int(ledger["holdout"].sum()),
        net_value=float(ledger["truth_chosen"].sum()),
        incremental_value=incremental,
        capture=capture_share(
            treated["truth_chosen"].to_numpy(),
            treated["truth_best"].to_numpy(),
            treated["truth_nothing"].to_numpy(),
        )
        if len(treated)
        else float("nan"),
        realised_reward=float(ledger["reward"].sum(skipna=True)),
        conversions=report.treated.conversions + report.holdout.conversions,
        treated_conversion_rate=report.treated.conversion_rate,
        holdout_conversion_rate=report.holdout.conversion_rate,
        lift=None if lift is None else lift.value,
        lift_low=None if lift is None else lift.ci_low,
        lift_high=None if lift is None else lift.ci_high,
        status=report.status,
        status_reason=report.status_reason,
        spend=float(ledger.loc[sent, "cost"].sum()),
        contacts=int(sent.sum()),
        contacts_per_customer=float(sent.sum()) / max(customers, 1),
        unsubscribes=harm["unsubscribes"],
        complaints=harm["complaints"],
        nothing_share=float(nothing.mean()) if len(treated) else float("nan"),
        cancelled=int((ledger["status"] == CANCELLED).sum()),
        regret=oracle_incremental - incremental,
        violations=int(sum(violations.values())),
        violations_by_rule={k: v for k, v in violations.items() if v},
    )


def daily_values(ledgers: dict[str, pd.DataFrame], *, days: int, oracle: str) -> pd.DataFrame:
    """Per arm and day: incremental net value, its running total, and regret against the oracle."""
    rows = []
    for arm, ledger in ledgers.items():
        gain = (ledger["truth_chosen"] - ledger["truth_nothing"]).groupby(ledger["day"]).sum()
        gain = gain.reindex(range(days), fill_value=0.0)
        for day, value in gain.items():
            rows.append({"arm": arm, "day": int(day), "value": float(value)})
    frame = pd.DataFrame(rows, columns=["arm", "day", "value"])
    frame["cumulative"] = frame.groupby("arm")["value"].cumsum()
    if oracle in ledgers:
        best = frame[frame["arm"] == oracle].set_index("day")["cumulative"]
        frame["regret"] = frame["day"].map(best) - frame["cumulative"]
    else:
        frame["regret"] = np.nan
    return frame


def channel_mix(ledgers: dict[str, pd.DataFrame], *, start: float) -> pd.DataFrame:
    """Messages sent per arm, day (of the send) and channel."""
    rows = []
    for arm, ledger in ledgers.items():
        sent = ledger[ledger["status"] == SENT]
        day = np.floor((sent["send_at"].to_numpy(float) - start) / DAY).astype(int)
        counts = pd.crosstab(day, sent["channel"].to_numpy())
        for ch in (c.value for c in CONTACT_CHANNELS):
            if ch not in counts:
                counts[ch] = 0
        for d, row in counts.iterrows():
            for ch in (c.value for c in CONTACT_CHANNELS):
                rows.append({"arm": arm, "day": int(d), "channel": ch, "sent": int(row[ch])})
    return pd.DataFrame(rows, columns=["arm", "day", "channel", "sent"])


def contact_pressure(ledgers: dict[str, pd.DataFrame], *, customers: int) -> pd.DataFrame:
    """How many customers received 0, 1, 2, ... messages during the experiment, per arm."""
    rows = []
    for arm, ledger in ledgers.items():
        sent = ledger[ledger["status"] == SENT]
        per_customer = np.bincount(sent["customer"].to_numpy(np.int64), minlength=customers)
        counts = np.bincount(per_customer)
        for k, n in enumerate(counts.tolist()):
            rows.append({"arm": arm, "contacts": k, "customers": n})
    return pd.DataFrame(rows, columns=["arm", "contacts", "customers"])


def summary_frame(summaries: dict[str, ArmSummary]) -> pd.DataFrame:
    """The per-arm table (one row per arm)."""
    frame = pd.DataFrame([s.to_dict() for s in summaries.values()])
    frame["violations_by_rule"] = frame["violations_by_rule"].map(
        lambda d: ", ".join(f"{k}: {v}" for k, v in d.items()) or "-"
    )
    return frame
