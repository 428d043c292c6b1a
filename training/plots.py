"""Pictures of a training run: each policy's estimated value, and what the reward model uses."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def policy_values(table: pd.DataFrame, path: Path, estimator: str = "dr") -> Path:
    """Each policy's estimated value per decision with its interval (one estimator)."""
    rows = table[table["estimator"] == estimator].sort_values("value")
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.5))
    err = [rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]]
    ax.errorbar(rows["value"], rows["policy"], xerr=err, fmt="o", capsize=4)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"estimated net value per decision ({estimator.upper()}, 95% interval)")
    ax.set_title("Off-policy evaluation on the hold-out period")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def feature_importance(importances: pd.Series, path: Path, top: int = 20) -> Path:
    """The reward model's most used features."""
    top_items = importances.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top_items) + 1.5))
    ax.barh(top_items.index, top_items.values)
    ax.set_xlabel("gain")
    ax.set_title("Reward model: feature importance")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
