"""The experiment's pictures (PNG, matplotlib's Agg backend): value, regret, lift, mix, pressure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from decisioning.channels import CONTACT_CHANNELS  # noqa: E402
from experiments.closed_loop.arms import ARMS, ORACLE  # noqa: E402
from experiments.closed_loop.metrics import ArmSummary  # noqa: E402

_COLORS = {arm: plt.get_cmap("tab10")(i) for i, arm in enumerate(ARMS)}
_CHANNEL_COLORS = {c.value: plt.get_cmap("Set2")(i) for i, c in enumerate(CONTACT_CHANNELS)}
#: contacts per customer shown one by one; more are grouped in the last bar
_PRESSURE_BINS = 6


def _color(arm: str) -> tuple[float, ...]:
    return tuple(_COLORS.get(arm, (0.4, 0.4, 0.4, 1.0)))


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cumulative_value(daily: pd.DataFrame, path: Path) -> Path:
    """Running total of each arm's expected net value over doing nothing, by day."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, rows in daily.groupby("arm", sort=False):
        ax.plot(rows["day"] + 1, rows["cumulative"], marker="o", ms=3, label=arm,
                color=_color(str(arm)), lw=2.2 if arm == "learned" else 1.4)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set(xlabel="day of the experiment", ylabel="cumulative value over doing nothing",
           title="Ground-truth net value of the decisions, cumulative")  # fmt: skip
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def regret(daily: pd.DataFrame, path: Path) -> Path:
    """Cumulative value the oracle earned that each arm did not, by day."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, rows in daily.groupby("arm", sort=False):
        if arm == ORACLE:
            continue
        ax.plot(rows["day"] + 1, rows["regret"], marker="o", ms=3, label=arm,
                color=_color(str(arm)), lw=2.2 if arm == "learned" else 1.4)  # fmt: skip
    ax.set(xlabel="day of the experiment", ylabel="oracle value minus arm value",
           title="Regret against the oracle, cumulative")  # fmt: skip
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def lift(summaries: dict[str, ArmSummary], target: float, path: Path) -> Path:
    """Each arm's lift against its holdout, with its 95% interval, and the objective's target."""
    arms = list(summaries)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(arms) + 1.6))
    for i, arm in enumerate(arms):
        s = summaries[arm]
        y = len(arms) - 1 - i
        if s.lift is None or s.lift_low is None or s.lift_high is None:
            ax.text(0, y, "not enough data", va="center", ha="center", fontsize=8, color="grey")
            continue
        ax.errorbar(s.lift, y, xerr=[[s.lift - s.lift_low], [s.lift_high - s.lift]], fmt="o",
                    color=_color(arm), capsize=4, lw=2)  # fmt: skip
        ax.text(s.lift, y + 0.22, f"{s.lift:+.0%}", fontsize=8, color=_color(arm), ha="center")
    ax.axvline(target, color="tab:green", ls="--", lw=1.2, label=f"target {target:+.0%}")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(arms)), list(reversed(arms)))
    ax.set_ylim(-0.6, len(arms) - 0.3)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.set(xlabel="conversion rate, treated vs holdout (relative)",
           title="Lift against the holdout, 95% interval")  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def channel_mix(channels: pd.DataFrame, arms: list[str], days: int, path: Path) -> Path:
    """Messages sent per day and channel, one panel per arm (stacked bars)."""
    cols = 3
    rows = int(np.ceil(len(arms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)  # fmt: skip
    last = int(channels["day"].max()) if len(channels) else days - 1
    x = np.arange(max(last + 1, days))
    for ax, arm in zip(axes.flat, arms, strict=False):
        mine = channels[channels["arm"] == arm]
        table = mine.pivot_table(index="day", columns="channel", values="sent", aggfunc="sum")
        table = table.reindex(x, fill_value=0).fillna(0)
        bottom = np.zeros(len(x))
        for ch, color in _CHANNEL_COLORS.items():
            values = table[ch].to_numpy() if ch in table else np.zeros(len(x))
            ax.bar(x + 1, values, bottom=bottom, color=color, label=ch, width=0.85)
            bottom += values
        ax.set_title(f"{arm}: {int(bottom.sum()):,} messages", fontsize=10)
        ax.axvline(days + 0.5, color="grey", ls=":", lw=1)
        ax.set_xlim(0.4, len(x) + 0.6)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes.flat[len(arms) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=8, ncol=len(labels), frameon=False)
    fig.suptitle("Messages sent per day and channel (right of the dotted line: sends scheduled "
                 "on the last days)", fontsize=10)  # fmt: skip
    fig.supxlabel("day of the experiment", fontsize=9, y=0.06)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _share(value: float, _pos: object = None) -> str:
    return f"{value:.1%}" if value < 0.01 else f"{value:.0%}"


def contact_pressure(pressure: pd.DataFrame, arms: list[str], path: Path) -> Path:
    """Share of customers by how many messages they received, per arm."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.8 / max(len(arms), 1)
    most = int(pressure.loc[pressure["customers"] > 0, "contacts"].max()) if len(pressure) else 0
    top = min(max(most, 1), _PRESSURE_BINS)
    bins = np.arange(top + 1)
    for i, arm in enumerate(arms):
        mine = pressure[pressure["arm"] == arm]
        k = np.minimum(mine["contacts"].to_numpy(), top)
        counts = np.bincount(k, weights=mine["customers"].to_numpy(float), minlength=len(bins))
        share = counts / max(counts.sum(), 1.0)
        ax.bar(bins + (i - (len(arms) - 1) / 2) * width, np.where(share > 0, share, np.nan),
               width=width, color=_color(arm), label=arm)  # fmt: skip
    ax.set_yscale("log")
    labels = [str(b) for b in bins]
    if most > top:
        labels[-1] = f"{top}+"
    ax.set_xticks(bins, labels)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_share))
    ax.set(xlabel="messages received during the experiment", ylabel="share of customers (log)",
           title="Contact pressure: how often each customer was contacted")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def draw_all(
    folder: Path,
    *,
    daily: pd.DataFrame,
    summaries: dict[str, ArmSummary],
    channels: pd.DataFrame,
    pressure: pd.DataFrame,
    target: float,
) -> dict[str, Path]:
    """Every picture of the report, written into ``folder``; title -> file."""
    arms = list(summaries)
    days = int(daily["day"].max()) + 1 if len(daily) else 0
    return {
        "Cumulative net value": cumulative_value(daily, folder / "cumulative_value.png"),
        "Regret against the oracle": regret(daily, folder / "regret.png"),
        "Lift against the target": lift(summaries, target, folder / "lift.png"),
        "Channel mix over time": channel_mix(channels, arms, days, folder / "channel_mix.png"),
        "Contact pressure": contact_pressure(pressure, arms, folder / "contact_pressure.png"),
    }
