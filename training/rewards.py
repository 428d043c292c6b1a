"""Rewards of logged decisions: value x conversion within the window - cost - fatigue harm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from decisioning.fatigue import DAY
from decisioning.history_replay import epoch_seconds


@dataclass(frozen=True, slots=True)
class RewardParts:
    """The reward of each decision and what it is made of (arrays of shape (n,))."""

    reward: np.ndarray
    conversion: np.ndarray
    value: np.ndarray
    cost: np.ndarray
    unsubscribes: np.ndarray
    complaints: np.ndarray


def _window_stats(
    *,
    customer: np.ndarray,
    ts: np.ndarray,
    window: float,
    ev_customer: np.ndarray,
    ev_ts: np.ndarray,
    ev_value: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Count (and sum the values of) events of the same customer in ``(ts, ts + window]``."""
    if len(ev_ts) == 0:
        zeros = np.zeros(len(ts))
        return zeros, zeros
    order = np.lexsort((ev_ts, ev_customer))
    ev_customer, ev_ts = ev_customer[order], ev_ts[order]
    values = np.zeros(len(ev_ts)) if ev_value is None else np.nan_to_num(ev_value[order])
    cum = np.concatenate([[0.0], np.cumsum(values)])
    # Lexicographic search on (customer, ts) through a structured view of both columns.
    keys = np.rec.fromarrays([ev_customer, ev_ts], formats=None, names="c,t")
    lo = np.searchsorted(
        keys, np.rec.fromarrays([customer, ts], formats=None, names="c,t"), side="right"
    )
    hi = np.searchsorted(
        keys, np.rec.fromarrays([customer, ts + window], formats=None, names="c,t"), side="right"
    )
    return (hi - lo).astype(float), cum[hi] - cum[lo]


def attribute_rewards(
    *,
    customer: np.ndarray,
    ts: np.ndarray,
    cost: np.ndarray,
    events: pd.DataFrame,
    outcome_type: str,
    outcome_category: str | None,
    reduce: bool,
    value_per_conversion: float,
    value_from_event: bool,
    window_days: float,
    unsubscribe_penalty: float,
    complaint_penalty: float,
    customer_codes: dict[str, int],
) -> RewardParts:
    """Rewards of decisions taken for ``customer`` (int codes) at epoch times ``ts``.

    A conversion is an outcome event within the attribution window after the decision (for a
    ``reduce`` objective, the outcome event *not* happening). The value is fixed per conversion
    or, with ``value_from_event``, the sum of the outcome events' values in the window.
    """
    window = window_days * DAY
    ev = events[events["customer_id"].isin(customer_codes.keys())]
    ev_codes = ev["customer_id"].map(customer_codes).to_numpy(dtype=np.int64)
    ev_ts = epoch_seconds(ev["ts"])
    is_outcome = (ev["type"] == outcome_type).to_numpy().copy()
    if outcome_category:
        is_outcome &= (ev["category"] == outcome_category).to_numpy()
    count, total = _window_stats(
        customer=customer,
        ts=ts,
        window=window,
        ev_customer=ev_codes[is_outcome],
        ev_ts=ev_ts[is_outcome],
        ev_value=ev["value"].to_numpy(dtype=float)[is_outcome],
    )
    if reduce:
        conversion = (count == 0).astype(float)
        value = conversion * value_per_conversion
    else:
        conversion = (count > 0).astype(float)
        value = total if value_from_event else conversion * value_per_conversion
    harm: dict[str, np.ndarray] = {}
    for kind in ("unsubscribe", "complaint"):
        mask = (ev["type"] == kind).to_numpy()
        harm[kind], _ = _window_stats(
            customer=customer, ts=ts, window=window, ev_customer=ev_codes[mask], ev_ts=ev_ts[mask]
        )
    reward = (
        value
        - cost
        - unsubscribe_penalty * harm["unsubscribe"]
        - complaint_penalty * harm["complaint"]
    )
    return RewardParts(reward, conversion, value, cost, harm["unsubscribe"], harm["complaint"])
