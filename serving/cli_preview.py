"""``decisioning preview``: the objective preview printed as a table and in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from decisioning.settings import Settings
from training.preview import NOTHING, Preview, event_rate, percent, preview_objective


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
        rate = event_rate(preview.kind)
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
                f"{percent(rate(conv.value))} [{percent(lo)}, {percent(hi)}]",
                f"{p.lift.value:+.1%} [{p.lift.low:+.1%}, {p.lift.high:+.1%}]",
                f"{p.dr('contact').value:.3f}",
                f"{p.contacts_per_customer_30d:.1f}",
                f"{p.spend_per_period:,.0f}",
                f"{net.value:+.3f} [{net.low:+.3f}, {net.high:+.3f}]",
            )
        nothing = preview.nothing
        table.add_row(
            NOTHING, percent(rate(nothing["conversion"].value)), "-", "0", "0", "0",
            f"{nothing['net_value'].value:+.3f}",
        )  # fmt: skip
        console.print(table)
        console.print(preview.describe())
        out.append(preview)
    return out
