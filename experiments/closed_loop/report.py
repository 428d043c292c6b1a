"""The experiment's HTML summary: one self-contained page beside its PNG pictures."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd

from decisioning.objectives import Objective

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2em; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.learned { font-weight: bold; background: #f6fbff; }
.status { padding: 1px 8px; border-radius: 10px; font-size: 0.85em; }
.reached { background: #c8f0c8; } .on-track { background: #e1f3d0; }
.behind { background: #fbe0c8; } .not-enough-data { background: #eee; }
.bad { color: #b00; font-weight: bold; } img { max-width: 100%; margin: 0.5em 0 1.5em; }
"""

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("incremental_value", "value over doing nothing", "{:+,.0f}"),
    ("net_value", "net value", "{:,.0f}"),
    ("capture", "share of the oracle's gain", "{:.0%}"),
    ("realised_reward", "realised reward", "{:,.0f}"),
    ("conversions", "conversions", "{:,}"),
    ("spend", "spend", "{:,.2f}"),
    ("contacts_per_customer", "contacts / customer", "{:.2f}"),
    ("unsubscribes", "unsubscribes", "{:,}"),
    ("complaints", "complaints", "{:,}"),
    ("nothing_share", "do nothing", "{:.0%}"),
    ("regret", "regret", "{:,.0f}"),
    ("violations", "guardrail violations", "{:,}"),
)


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    return pattern.format(value)


def _lift(row: pd.Series) -> str:
    if pd.isna(row["lift"]):
        return "-"
    return f"{row['lift']:+.1%} [{row['lift_low']:+.1%}, {row['lift_high']:+.1%}]"


def _status(status: str) -> str:
    css = status.replace(" ", "-")
    return f'<span class="status {css}">{html.escape(status)}</span>'


def arms_table(table: pd.DataFrame) -> str:
    """The per-arm figures as an HTML table."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in _COLUMNS)
    rows = []
    for _, row in table.iterrows():
        cells = "".join(
            f'<td class="{"bad" if key == "violations" and row[key] else ""}">'
            f"{_fmt(row[key], pattern)}</td>"
            for key, _, pattern in _COLUMNS
        )
        css = ' class="learned"' if row["arm"] == "learned" else ""
        rows.append(f"<tr{css}><td>{html.escape(str(row['arm']))}</td>{cells}</tr>")
    return f"<table><tr><th>arm</th>{head}</tr>{''.join(rows)}</table>"


def progress_table(table: pd.DataFrame, target: float) -> str:
    """Lift against the holdout per arm, its interval, and the status against the target."""
    rows = []
    for _, row in table.iterrows():
        treated = _fmt(row["treated_conversion_rate"], "{:.2%}")
        holdout = _fmt(row["holdout_conversion_rate"], "{:.2%}")
        rows.append(
            f"<tr><td>{html.escape(str(row['arm']))}</td><td>{treated}</td><td>{holdout}</td>"
            f"<td>{_lift(row)}</td><td>{target:+.0%}</td><td>{_status(row['status'])}</td>"
            f"<td style='text-align:left'>{html.escape(str(row['status_reason']))}</td></tr>"
        )
    head = (
        "<tr><th>arm</th><th>treated conversion</th><th>holdout conversion</th>"
        "<th>lift [95% interval]</th><th>target</th><th>status</th><th>why</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def nights_table(nights: pd.DataFrame) -> str:
    """The learned arm's training runs."""
    if nights.empty:
        return "<p>The learned arm did not run.</p>"
    rows = []
    for _, n in nights.iterrows():
        day = "before day 1" if n["day"] < 0 else f"after day {int(n['day']) + 1}"
        verdict = "champion" if n["promoted"] else "challenger"
        rows.append(
            f"<tr><td>{day}</td><td>{html.escape(str(n['candidate']))}</td>"
            f"<td>{html.escape(str(n['model_version']))}</td><td>{int(n['examples']):,}</td>"
            f"<td>{verdict}</td><td style='text-align:left'>{html.escape(str(n['reason']))}</td>"
            f"<td>{n['seconds']:.0f}s</td></tr>"
        )
    head = (
        "<tr><th>run</th><th>candidate</th><th>version</th><th>examples</th><th>verdict</th>"
        "<th>promotion gate</th><th>time</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def write_html(
    path: Path,
    *,
    objective: Objective,
    config: dict[str, Any],
    table: pd.DataFrame,
    nights: pd.DataFrame,
    images: dict[str, Path],
) -> Path:
    """Write the report page to ``path`` (images referenced by their file names)."""
    learned = table[table["arm"] == "learned"]
    headline = ""
    if len(learned):
        row = learned.iloc[0]
        headline = (
            f"<p>The service (learned arm): lift {_lift(row)} against the holdout, target "
            f"{objective.target_lift:+.0%}: {_status(row['status'])} "
            f"{html.escape(str(row['status_reason']))}.</p>"
        )
    settings = ", ".join(f"{k}: {html.escape(str(v))}" for k, v in config.items())
    pictures = "".join(
        f"<h3>{html.escape(title)}</h3><img src='{html.escape(p.name)}' alt='{html.escape(title)}'>"
        for title, p in images.items()
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Closed loop: {html.escape(objective.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>Closed-loop experiment: {html.escape(objective.name)}</h1>
<p class="sub">{html.escape(objective.describe())}</p>
<p class="sub">{settings}</p>
{headline}
<h2>Arms</h2>
<p>Every arm decides for its own copy of the same simulated customers through the decision
engine, under the same guardrails and holdout. Value is the world's ground-truth expected net
value of the actions taken (conversion value minus cost and fatigue harm); the realised reward
is what the reward job attributed to the logged decisions.</p>
{arms_table(table)}
<h2>Progress towards the objective</h2>
{progress_table(table, objective.target_lift)}
<h2>Learning</h2>
{nights_table(nights)}
<h2>Pictures</h2>
{pictures}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path
