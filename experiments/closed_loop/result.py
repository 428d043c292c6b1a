"""What a closed-loop experiment found: per-arm figures, series for the plots, the report files.

:func:`collect` reads every arm's ledger, decision log and world after the loop, audits what
was sent, computes the figures, draws the plots, writes the HTML report and logs the whole
report as an MLflow run of the ``experiments/closed_loop`` experiment.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from decisioning.fatigue import DAY
from decisioning.objectives import Objective
from decisioning.settings import Settings
from experiments.closed_loop import plots
from experiments.closed_loop.arms import ORACLE
from experiments.closed_loop.audit import audit_sends
from experiments.closed_loop.learning import Night, contact_policy
from experiments.closed_loop.ledger import SENT
from experiments.closed_loop.metrics import (
    ArmSummary,
    channel_mix,
    contact_pressure,
    daily_values,
    harm_events,
    incremental_value,
    summarise,
    summary_frame,
)
from experiments.closed_loop.report import write_html
from serving.report import ObjectiveReport, build_report

if TYPE_CHECKING:
    from experiments.closed_loop.loop import ExperimentConfig
    from experiments.closed_loop.setup import Arms

EXPERIMENT = "experiments/closed_loop"


@dataclass
class ExperimentResult:
    """The experiment's figures, series and files."""

    config: ExperimentConfig
    objective: Objective
    summaries: dict[str, ArmSummary]
    reports: dict[str, ObjectiveReport]
    daily: pd.DataFrame
    channels: pd.DataFrame
    pressure: pd.DataFrame
    nights: list[Night]
    report_dir: Path
    index_html: Path
    mlflow_run_id: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The per-arm table."""
        return summary_frame(self.summaries)


def collect(
    arms: Arms,
    *,
    config: ExperimentConfig,
    objective: Objective,
    settings: Settings,
    out_dir: Path,
    loop_start: float,
    console: Console,
) -> ExperimentResult:
    """Figures, plots, HTML report and MLflow run of a finished loop."""
    ledgers: dict[str, pd.DataFrame] = {}
    for name, run_ in arms.runs.items():
        frame = run_.ledger.frame()
        frame["day"] = ((frame["decided_at"] - loop_start) // DAY).astype(int)
        ledgers[name] = frame
    daily = daily_values(ledgers, days=config.days, oracle=ORACLE)
    oracle_total = incremental_value(ledgers[ORACLE])
    policy = contact_policy(objective).settings
    summaries: dict[str, ArmSummary] = {}
    reports: dict[str, ObjectiveReport] = {}
    for name, run_ in arms.runs.items():
        ledger = ledgers[name]
        report = build_report(
            objective,
            run_.store.iter_decisions(objective.id),
            channel_spend=run_.store.spend_by_channel(objective.id),
        )
        sends = ledger[ledger["status"] == SENT]
        violations = audit_sends(run_.sim, sends, policy)
        summaries[name] = summarise(
            name,
            ledger=ledger,
            report=report,
            harm=harm_events(run_.sim.event_log.data, since=loop_start),
            customers=config.customers,
            oracle_incremental=oracle_total,
            violations=violations,
        )
        reports[name] = report
        run_.store.close()
    channels = channel_mix(ledgers, start=loop_start)
    pressure = contact_pressure(ledgers, customers=config.customers)
    report_dir = out_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    images = plots.draw_all(
        report_dir,
        daily=daily,
        summaries=summaries,
        channels=channels,
        pressure=pressure,
        target=objective.target_lift,
    )
    table = summary_frame(summaries)
    table.to_csv(report_dir / "arms.csv", index=False)
    daily.to_csv(report_dir / "daily.csv", index=False)
    channels.to_csv(report_dir / "channels.csv", index=False)
    nights = pd.DataFrame([asdict(n) for n in arms.nights])
    nights.to_csv(report_dir / "nights.csv", index=False)
    (report_dir / "summary.json").write_text(
        json.dumps(
            {
                "config": _config_dict(config),
                "arms": table.to_dict(orient="records"),
                "service": {name: run_.describe() for name, run_ in arms.runs.items()},
            },
            indent=2,
            default=str,
        )
    )
    index = write_html(
        report_dir / "index.html",
        objective=objective,
        config=_config_dict(config),
        table=table,
        nights=nights,
        images=images,
    )
    result = ExperimentResult(
        config=config, objective=objective, summaries=summaries, reports=reports, daily=daily,
        channels=channels, pressure=pressure, nights=list(arms.nights), report_dir=report_dir,
        index_html=index,
    )  # fmt: skip
    result.mlflow_run_id = log_to_mlflow(result, settings)
    console.print(arm_table(table))
    console.print(f"report: {index}")
    return result


def _config_dict(config: ExperimentConfig) -> dict[str, Any]:
    return {
        "customers": config.customers,
        "days": config.days,
        "warmup_days": config.warmup_days,
        "seed": config.seed,
        "tick_minutes": config.tick_minutes,
        "cooldown_days": config.cooldown_days,
        "train_days": config.train_days,
        "retrain_every": config.retrain_every,
        "objective": config.objective,
        "arms": ",".join(config.arms),
    }


def arm_table(table: pd.DataFrame) -> Table:
    """The per-arm table for the terminal."""
    out = Table(
        "arm", "value vs nothing", "captured", "reward", "lift [95% CI]", "status", "spend",
        "contacts/cust", "unsub", "complaints", "nothing", "regret", "violations",
        title="Closed loop: per arm",
    )  # fmt: skip
    for row in table.itertuples():
        lift = "-" if pd.isna(row.lift) else (
            f"{row.lift:+.1%} [{row.lift_low:+.0%}, {row.lift_high:+.0%}]"
        )  # fmt: skip
        out.add_row(
            row.arm, f"{row.incremental_value:+,.0f}", f"{row.capture:.0%}",
            f"{row.realised_reward:,.0f}", lift, row.status, f"{row.spend:,.0f}",
            f"{row.contacts_per_customer:.2f}", str(row.unsubscribes), str(row.complaints),
            f"{row.nothing_share:.0%}", f"{row.regret:,.0f}", str(row.violations),
        )  # fmt: skip
    return out


def log_to_mlflow(result: ExperimentResult, settings: Settings) -> str:
    """Log the experiment as a run of ``experiments/closed_loop``; returns the run id."""
    import mlflow

    from training.registry import connect, experiment_for

    connect(settings)
    mlflow.set_experiment(experiment_id=experiment_for(EXPERIMENT, settings))
    config = _config_dict(result.config)
    with mlflow.start_run(run_name=f"{result.objective.id} {result.config.days}d") as run:
        mlflow.log_params(config)
        metrics: dict[str, float] = {}
        for name, s in result.summaries.items():
            for key in (
                "incremental_value", "net_value", "realised_reward", "capture", "spend",
                "contacts_per_customer", "unsubscribes", "complaints", "nothing_share", "regret",
                "violations", "lift", "lift_low", "lift_high",
            ):  # fmt: skip
                value = getattr(s, key)
                if value is not None and pd.notna(value):
                    metrics[f"{name}.{key}"] = float(value)
        mlflow.log_metrics(metrics)
        mlflow.set_tags({f"{n}.status": s.status for n, s in result.summaries.items()})
        mlflow.log_artifacts(str(result.report_dir), artifact_path="report")
    return str(run.info.run_id)
