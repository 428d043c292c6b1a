"""The history a simulated world writes: customers, contacts and events in the data contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from decisioning.actions import ALL_SLOTS
from decisioning.channels import CONSENT_CHANNELS
from decisioning.errors import InvalidInput
from experiments.simulator.objectives import CATEGORIES
from experiments.simulator.organic import EVENT_TYPES
from experiments.simulator.response import CHANNELS

if TYPE_CHECKING:
    from experiments.simulator.engine import Simulator

TEXT_DTYPE = "str"
TABLE_NAMES: tuple[str, ...] = ("customers", "contacts", "events")
FORMATS: tuple[str, ...] = ("parquet", "csv")


def format_ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """String ids ``prefix`` + zero-padded ``numbers`` (an object array)."""
    digits = np.asarray(numbers, dtype=np.int64).astype(str)
    if digits.size == 0:
        return np.empty(0, dtype=object)
    return np.strings.add(prefix, np.strings.zfill(digits, width)).astype(object)


def timestamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    """UTC-aware timestamps (microsecond precision) of epoch seconds."""
    micros = np.round(np.asarray(seconds, dtype=float) * 1e6).astype(np.int64)
    return pd.DatetimeIndex(pd.to_datetime(micros, unit="us", utc=True))


def _text(values: np.ndarray) -> pd.Series:
    """A text column (pandas' string dtype, None becoming missing), whatever the values."""
    return pd.Series(values, dtype=TEXT_DTYPE)


def _labels(values: tuple[object, ...], codes: np.ndarray) -> pd.Series:
    """Labels of integer codes; code -1 gives a missing value."""
    table = np.array([*map(str, values), None], dtype=object)
    return _text(table[np.asarray(codes, dtype=np.int64)])


@dataclass(frozen=True)
class SimulatedHistory:
    """The three history tables a simulated world wrote, and how they were made."""

    customers: pd.DataFrame
    contacts: pd.DataFrame
    events: pd.DataFrame
    policy: str
    objective: str
    seed: int
    start: datetime
    days: int

    def write(
        self, out_dir: str | Path, format: Literal["parquet", "csv"] = "parquet"
    ) -> dict[str, Path]:
        """Write ``customers``, ``contacts`` and ``events`` as ``<name>.<format>`` into ``out_dir``.

        Returns the path written for each table.
        """
        if format not in FORMATS:
            raise InvalidInput(f"format {format!r} is not one of {', '.join(FORMATS)}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for name in TABLE_NAMES:
            frame: pd.DataFrame = getattr(self, name)
            path = out / f"{name}.{format}"
            if format == "parquet":
                frame.to_parquet(path, index=False)
            else:
                frame.to_csv(path, index=False)
            paths[name] = path
        return paths


def customers_frame(sim: Simulator) -> pd.DataFrame:
    """The ``customers`` table: ids, sign-up, time zone, consents at sign-up and attributes."""
    pop, w = sim.population, sim.world
    frame = pd.DataFrame(
        {
            "customer_id": _text(pop.customer_ids),
            "signup_at": timestamps(pop.signup),
            "timezone": _text(np.array(w.timezones, dtype=object)[pop.tz]),
        }
    )
    for i, channel in enumerate(CONSENT_CHANNELS):
        frame[f"consent_{channel.value}"] = pop.consent[:, i].copy()
    frame["segment"] = _text(np.array(w.segments, dtype=object)[pop.segment])
    frame["plan"] = _text(np.where(pop.premium_plan, "premium", "basic").astype(object))
    frame["country"] = _text(np.array(w.countries, dtype=object)[pop.tz])
    return frame


def contacts_frame(sim: Simulator) -> pd.DataFrame:
    """The ``contacts`` table: one row per decision, do-nothing included."""
    c = sim.contact_log.data
    return pd.DataFrame(
        {
            "contact_id": _text(format_ids("ct", c["contact"], 9)),
            "customer_id": _text(sim.population.customer_ids[c["cust"]]),
            "ts": timestamps(c["ts"]),
            "channel": _labels(CHANNELS, c["channel"]),
            "slot": _labels(ALL_SLOTS, c["slot"]),
            "send_at": timestamps(c["send"]),
            "objective": _text(c["objective"]),
            "cost": c["cost"],
            "propensity": c["propensity"],
            "decision_id": _text(c["decision"]),
            "category": _labels(CATEGORIES, c["category"]),
        }
    )


def events_frame(sim: Simulator) -> pd.DataFrame:
    """The ``events`` table, in time order; anonymous events carry no customer id."""
    e = sim.event_log.data
    customer = sim.population.customer_ids[e["cust"]]
    customer[e["anonymous"]] = ""
    contact = np.full(len(e["contact"]), None, dtype=object)
    has_contact = e["contact"] >= 0
    contact[has_contact] = format_ids("ct", e["contact"][has_contact], 9)
    anonymous = np.full(len(e["anon"]), None, dtype=object)
    has_anon = e["anon"] >= 0
    anonymous[has_anon] = format_ids("anon", e["anon"][has_anon], 8)
    return pd.DataFrame(
        {
            "event_id": _text(format_ids("ev", e["event"], 10)),
            "customer_id": _text(customer),
            "ts": timestamps(e["ts"]),
            "type": _labels(EVENT_TYPES, e["type"]),
            "channel": _labels(CHANNELS, e["channel"]),
            "contact_id": _text(contact),
            "value": e["value"],
            "category": _labels(CATEGORIES, e["category"]),
            "anonymous_id": _text(anonymous),
        }
    )


def build_history(sim: Simulator, *, policy: str = "", objective: str = "") -> SimulatedHistory:
    """Everything ``sim`` has written so far, as data-contract tables."""
    return SimulatedHistory(
        customers=customers_frame(sim),
        contacts=contacts_frame(sim),
        events=events_frame(sim),
        policy=policy,
        objective=objective,
        seed=sim.seed,
        start=sim.start,
        days=sim.day,
    )
