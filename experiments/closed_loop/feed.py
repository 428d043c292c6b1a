"""Between the simulated world and the service: the event feed, and the objective in both tongues.

The service learns what customers do from :class:`~decisioning.records.Event` records; the
simulator writes its events as arrays. :class:`EventFeed` turns the rows the world wrote since
the last call into records, with the ids the simulator's history tables use, so the service's
store and the history files name every event the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from decisioning.channels import Channel
from decisioning.objectives import Objective
from decisioning.records import Event
from experiments.simulator import CATEGORIES, SimObjective, Simulator
from experiments.simulator.organic import EVENT_TYPES
from experiments.simulator.response import CHANNELS
from experiments.simulator.tables import format_ids


def sim_objective(objective: Objective) -> SimObjective:
    """The simulator's view of a business objective: its outcome, value, window and penalties.

    The ground truth is then the expected net value under the marketer's own definition (the
    same value per conversion and fatigue penalties the rewards use).
    """
    outcome = objective.outcome
    return SimObjective(
        name=objective.id,
        kind=objective.kind,
        event_type=outcome.event_type,
        category=outcome.category if objective.kind == "increase" else None,
        value=objective.conversion_value(),
        window_days=float(objective.attribution_window_days),
        unsubscribe_penalty=float(objective.fatigue_penalties.unsubscribe),
        complaint_penalty=float(objective.fatigue_penalties.complaint),
    )


def moment(ts: float) -> datetime:
    """The UTC datetime of epoch seconds ``ts``."""
    return datetime.fromtimestamp(ts, UTC)


def exact_times(ts: np.ndarray) -> np.ndarray:
    """Epoch seconds exactly as ``moment(ts).timestamp()`` gives them back.

    The service works on datetimes (microseconds); times that survive the round trip let the
    loop match what the service saw (``context.now``) with what the world asked about.
    """
    return np.array([moment(float(t)).timestamp() for t in ts], dtype=float)


class EventFeed:
    """The events a world wrote since the last :meth:`take`, as the service's records."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.offset = 0
        self._channels = [Channel(c) for c in CHANNELS]

    def take(self) -> list[Event]:
        """Records of the rows written since the previous call, in the order they were written."""
        data = self.sim.event_log.data
        end = len(data["ts"])
        if end == self.offset:
            return []
        rows = slice(self.offset, end)
        self.offset = end
        ids = format_ids("ev", data["event"][rows], 10)
        customers = self.sim.population.customer_ids[data["cust"][rows]]
        anonymous = data["anonymous"][rows]
        anon = data["anon"][rows]
        anon_ids = format_ids("anon", np.maximum(anon, 0), 8)
        contact = data["contact"][rows]
        contact_ids = format_ids("ct", np.maximum(contact, 0), 9)
        events = []
        for i, (ts, kind, channel, value, category) in enumerate(
            zip(
                data["ts"][rows].tolist(),
                data["type"][rows].tolist(),
                data["channel"][rows].tolist(),
                data["value"][rows].tolist(),
                data["category"][rows].tolist(),
                strict=True,
            )
        ):
            events.append(
                Event(
                    event_id=ids[i],
                    customer_id="" if anonymous[i] else customers[i],
                    ts=moment(ts),
                    type=EVENT_TYPES[kind],
                    channel=self._channels[channel] if channel >= 0 else None,
                    contact_id=contact_ids[i] if contact[i] >= 0 else None,
                    value=None if np.isnan(value) else value,
                    category=CATEGORIES[category] if category >= 0 else None,
                    anonymous_id=anon_ids[i] if anon[i] >= 0 else None,
                )
            )
        return events


def events_since(sim: Simulator, since: float) -> pd.DataFrame:
    """The world's events from ``since`` on, with the columns reward attribution reads.

    Anonymous events carry no customer id, as in the history the world writes.
    """
    data = sim.event_log.data
    rows = data["ts"] >= since
    customer = sim.population.customer_ids[data["cust"][rows]].astype(object)
    customer[data["anonymous"][rows]] = ""
    types = np.array([t.value for t in EVENT_TYPES], dtype=object)
    categories = np.array([*CATEGORIES, None], dtype=object)
    return pd.DataFrame(
        {
            "customer_id": customer,
            "ts": pd.to_datetime(data["ts"][rows], unit="s", utc=True),
            "type": types[data["type"][rows]],
            "category": categories[data["category"][rows]],
            "value": data["value"][rows],
        }
    )
