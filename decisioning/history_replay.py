"""Replay of a history: contacts and events merged into one time-ordered columnar stream.

The training dataset builder and the store's bulk ingestion fold this stream into
:class:`~decisioning.customer_view.CustomerState` objects in order, so each state sees exactly what
happened before a moment. Contacts sit at their ``send_at`` (when the message reached the
customer and started to weigh on them); their decision time stays in ``decided_at``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from decisioning.channels import DEFAULT_COSTS, Channel

if TYPE_CHECKING:
    from decisioning.history import History

#: ``kind`` of a stream row that is a contact
CONTACT = 0
#: ``kind`` of a stream row that is an event
EVENT = 1


class ReplayRow(NamedTuple):
    """One row of a :class:`ReplayStream`, as plain Python values."""

    ts: float
    kind: int
    row: int
    customer_id: str
    anonymous_id: str
    channel: str
    type: str
    value: float
    cost: float
    category: str
    contact_id: str
    decided_at: float


@dataclass(frozen=True, slots=True)
class ReplayStream:
    """Contacts and events of a history in time order, as parallel numpy columns.

    Attributes
    ----------
    ts : ndarray of float64, shape (n,)
        Epoch seconds, sorted ascending: ``send_at`` for a contact, ``ts`` for an event.
    kind : ndarray of int8, shape (n,)
        :data:`CONTACT` or :data:`EVENT`; at equal times contacts come first, so the delivery of a
        message never precedes its send.
    row : ndarray of int64, shape (n,)
        Position in ``History.contacts`` or ``History.events`` (for the columns not copied here).
    customer_id, anonymous_id, channel, type, category, contact_id : ndarray of object (str)
        ``""`` when absent. ``type`` is the event type (``""`` for contacts); ``contact_id`` is the
        contact's own id, or for an event the contact it answers.
    value : ndarray of float64
        Event value (revenue), NaN when absent and for contacts.
    cost : ndarray of float64
        Contact cost, the channel's default cost when the history gives none; NaN for events.
    decided_at : ndarray of float64
        The contact's decision time ``ts`` in epoch seconds; NaN for events.
    """

    ts: np.ndarray
    kind: np.ndarray
    row: np.ndarray
    customer_id: np.ndarray
    anonymous_id: np.ndarray
    channel: np.ndarray
    type: np.ndarray
    value: np.ndarray
    cost: np.ndarray
    category: np.ndarray
    contact_id: np.ndarray
    decided_at: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[ReplayRow]:
        """The rows as :class:`ReplayRow` tuples (columns are turned into lists once)."""
        columns = [getattr(self, f.name).tolist() for f in fields(self)]
        return map(ReplayRow._make, zip(*columns, strict=True))

    def take(self, index: np.ndarray | slice) -> ReplayStream:
        """The rows at ``index`` (a slice or positions), still in time order if those are."""
        return ReplayStream(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def window(self, start: float | None = None, end: float | None = None) -> ReplayStream:
        """The rows with ``start <= ts < end`` (epoch seconds; either bound may be open)."""
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, side="left"))
        hi = len(self) if end is None else int(np.searchsorted(self.ts, end, side="left"))
        return self.take(slice(lo, max(lo, hi)))

    def for_customers(self, customer_ids: set[str] | list[str]) -> ReplayStream:
        """The rows of some customers only, in the same order (e.g. one training shard)."""
        return self.take(np.flatnonzero(pd.Series(self.customer_id).isin(list(customer_ids))))


def replay_stream(
    history: History, *, default_costs: Mapping[Channel, float] = DEFAULT_COSTS
) -> ReplayStream:
    """Merge a history's contacts and events into one time-ordered :class:`ReplayStream`.

    Parameters
    ----------
    history
        A loaded :class:`~decisioning.history.History`.
    default_costs
        Cost of a contact whose ``cost`` cell is empty, per channel.

    Notes
    -----
    Columnar and vectorised: building the stream of a few million rows takes seconds, and
    iterating it yields plain tuples, not DataFrame rows.
    """
    contacts, events = history.contacts, history.events
    n_c, n_e = len(contacts), len(events)
    channel = contacts["channel"].to_numpy(dtype=object)
    defaults = pd.Series({c.value: float(v) for c, v in default_costs.items()})
    cost = contacts["cost"].to_numpy(dtype="float64", copy=True)
    missing = np.isnan(cost)
    if missing.any():
        cost[missing] = pd.Series(channel[missing]).map(defaults).fillna(0.0).to_numpy()
    columns = {
        "ts": np.concatenate([_epoch(contacts["send_at"]), _epoch(events["ts"])]),
        "kind": np.concatenate(
            [np.full(n_c, CONTACT, dtype=np.int8), np.full(n_e, EVENT, dtype=np.int8)]
        ),
        "row": np.concatenate([np.arange(n_c, dtype=np.int64), np.arange(n_e, dtype=np.int64)]),
        "customer_id": _text(contacts["customer_id"], events["customer_id"]),
        "anonymous_id": np.concatenate(
            [np.full(n_c, "", dtype=object), events["anonymous_id"].to_numpy(dtype=object)]
        ),
        "channel": np.concatenate([channel, events["channel"].to_numpy(dtype=object)]),
        "type": np.concatenate(
            [np.full(n_c, "", dtype=object), events["type"].to_numpy(dtype=object)]
        ),
        "value": np.concatenate([np.full(n_c, np.nan), events["value"].to_numpy("float64")]),
        "cost": np.concatenate([cost, np.full(n_e, np.nan)]),
        "category": _text(contacts["category"], events["category"]),
        "contact_id": _text(contacts["contact_id"], events["contact_id"]),
        "decided_at": np.concatenate([_epoch(contacts["ts"]), np.full(n_e, np.nan)]),
    }
    # lexsort: last key is the primary one; kind then row keep ties deterministic.
    order = np.lexsort((columns["row"], columns["kind"], columns["ts"]))
    return ReplayStream(**{name: values[order] for name, values in columns.items()})


def epoch_seconds(values: pd.Series) -> np.ndarray:
    """Epoch seconds of UTC timestamps, bit for bit what ``datetime.timestamp()`` gives.

    Whole microseconds divided by 1e6, as ``timedelta.total_seconds`` does, so features
    computed offline from a table equal those computed online from event records.
    """
    nanos = values.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")
    return (nanos // 1000) / 1e6


_epoch = epoch_seconds


def _text(contact_values: pd.Series, event_values: pd.Series) -> np.ndarray:
    return np.concatenate(
        [contact_values.to_numpy(dtype=object), event_values.to_numpy(dtype=object)]
    )
