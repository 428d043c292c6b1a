"""Behavioural history: load the customers, contacts and events tables under the data contract.

A history directory holds ``customers``, ``contacts`` and ``events``, each as ``.csv`` or
``.parquet``. :func:`load_history` checks every cell against the contract, fails with a
:class:`~decisioning.errors.HistoryError` naming the file, column and 1-based data row of the first
problem, and returns a :class:`History` of normalised frames and a :class:`LoadReport` of what was
read, kept and skipped. Timestamps without a zone are read as UTC.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from decisioning.actions import Slot
from decisioning.channels import CONSENT_CHANNELS, Channel
from decisioning.errors import HistoryError
from decisioning.history_parse import TIMESTAMP_DTYPE
from decisioning.history_replay import ReplayRow, ReplayStream, replay_stream
from decisioning.history_tables import (
    CONSENT_COLUMNS,
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    EVENT_COLUMNS,
    SKIP_DUPLICATE,
    SKIP_UNKNOWN_CUSTOMER,
    TABLES,
    LoadReport,
    normalise_contacts,
    normalise_customers,
    normalise_events,
    normalise_tables,
)
from decisioning.records import Contact, Customer, Event, EventType

__all__ = [
    "CONTACT_COLUMNS",
    "CUSTOMER_COLUMNS",
    "EVENT_COLUMNS",
    "SKIP_DUPLICATE",
    "SKIP_UNKNOWN_CUSTOMER",
    "TABLES",
    "History",
    "LoadReport",
    "ReplayRow",
    "ReplayStream",
    "find_table",
    "load_history",
    "load_table",
    "read_table",
    "replay_stream",
    "write_history",
]

FORMATS: tuple[str, ...] = ("csv", "parquet")


@dataclass(frozen=True, slots=True)
class History:
    """The three normalised history tables and the report of how they were loaded.

    Column order and dtypes are fixed: ids and names are ``str`` (``""`` when absent), times are
    ``datetime64[ns, UTC]``, consents are ``bool``, numbers are ``float64`` (NaN when absent);
    ``customers`` carries its attribute columns after the contract columns.
    """

    customers: pd.DataFrame
    contacts: pd.DataFrame
    events: pd.DataFrame
    report: LoadReport

    @classmethod
    def from_frames(
        cls,
        *,
        customers: pd.DataFrame,
        contacts: pd.DataFrame,
        events: pd.DataFrame,
        strict: bool = True,
        source: str = "frame",
    ) -> History:
        """Validate in-memory tables (e.g. from the simulator) exactly as files are validated."""
        files = {table: f"{table} ({source})" for table in TABLES}
        raw = {"customers": customers, "contacts": contacts, "events": events}
        frames, report = normalise_tables(raw, files=files, strict=strict)
        return cls(**frames, report=report)

    @property
    def attribute_columns(self) -> tuple[str, ...]:
        """The customers' free attribute columns (segment, plan, country, ...)."""
        return tuple(self.customers.columns[len(CUSTOMER_COLUMNS) :])

    def customer_records(self) -> Iterator[Customer]:
        """Each customer as a :class:`~decisioning.records.Customer`, in table order."""
        frame = self.customers
        signups = _datetimes(frame["signup_at"])
        consents = [frame[c].to_numpy(dtype=bool).tolist() for c in CONSENT_COLUMNS]
        attributes = self.attribute_columns
        attribute_values = [frame[a].tolist() for a in attributes]
        for i, (customer_id, zone_name) in enumerate(
            zip(frame["customer_id"].tolist(), frame["timezone"].tolist(), strict=True)
        ):
            yield Customer(
                customer_id=customer_id,
                signup_at=signups[i],
                timezone=zone_name,
                consents={
                    channel: flags[i]
                    for channel, flags in zip(CONSENT_CHANNELS, consents, strict=True)
                },
                attributes={
                    name: _attribute(values[i])
                    for name, values in zip(attributes, attribute_values, strict=True)
                },
            )

    def contact_records(self) -> Iterator[Contact]:
        """Each contact as a :class:`~decisioning.records.Contact`, in table order."""
        frame = self.contacts
        ts, send = _datetimes(frame["ts"]), _datetimes(frame["send_at"])
        rows = zip(
            *(frame[c].tolist() for c in ("contact_id", "customer_id", "channel", "slot")),
            *(frame[c].tolist() for c in ("objective", "cost", "propensity", "decision_id")),
            frame["category"].tolist(),
            strict=True,
        )
        for i, (cid, customer, channel, slot, objective, cost, prop, decision, cat) in enumerate(
            rows
        ):
            yield Contact(
                contact_id=cid,
                customer_id=customer,
                ts=ts[i],
                channel=Channel(channel),
                slot=Slot(slot),
                send_at=send[i],
                objective=objective or None,
                cost=None if math.isnan(cost) else cost,
                propensity=None if math.isnan(prop) else prop,
                decision_id=decision or None,
                category=cat or None,
            )

    def event_records(self) -> Iterator[Event]:
        """Each event as a :class:`~decisioning.records.Event`, in table order."""
        frame = self.events
        ts = _datetimes(frame["ts"])
        names = ("event_id", "customer_id", "type", "channel", "contact_id", "value", "category")
        rows = zip(*(frame[c].tolist() for c in names), frame["anonymous_id"].tolist(), strict=True)
        for i, (eid, customer, kind, channel, contact, value, category, anonymous) in enumerate(
            rows
        ):
            yield Event(
                event_id=eid,
                customer_id=customer,
                ts=ts[i],
                type=EventType(kind),
                channel=Channel(channel) if channel else None,
                contact_id=contact or None,
                value=None if math.isnan(value) else value,
                category=category or None,
                anonymous_id=anonymous or None,
            )

    def replay(self) -> ReplayStream:
        """Contacts and events merged in time order; see :func:`replay_stream`."""
        return replay_stream(self)


def find_table(directory: str | Path, name: str) -> Path:
    """The one file holding table ``name`` in ``directory`` (``name.csv`` or ``name.parquet``)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise HistoryError("not a directory holding history tables", file=str(folder))
    if name not in TABLES:
        raise HistoryError(f"unknown table {name!r} (expected one of: {', '.join(TABLES)})")
    present = [folder / f"{name}.{fmt}" for fmt in FORMATS if (folder / f"{name}.{fmt}").is_file()]
    if not present:
        raise HistoryError(
            f"no {name} table: expected {name}.csv or {name}.parquet", file=str(folder)
        )
    if len(present) > 1:
        raise HistoryError(
            f"both {name}.csv and {name}.parquet exist: keep only one", file=str(folder)
        )
    return present[0]


def read_table(path: str | Path) -> pd.DataFrame:
    """One table file as read, before any check: CSV cells as strings (``""`` when empty)."""
    file = Path(path)
    try:
        if file.suffix == ".parquet":
            frame = pd.read_parquet(file)
        else:
            # Strings only: the contract, not pandas' guessing, decides what a cell means;
            # utf-8-sig drops the byte-order mark spreadsheet exports put in front of the header.
            frame = pd.read_csv(
                file, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
            )
    except HistoryError:
        raise
    except pd.errors.EmptyDataError:
        raise HistoryError("empty file: expected a header row", file=str(file)) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # parser and Arrow errors
        raise HistoryError(f"cannot read table: {exc}", file=str(file)) from exc
    return frame


def load_table(directory: str | Path, name: str) -> pd.DataFrame:
    """One table checked on its own (columns, cells, duplicate ids) and normalised.

    Links between tables (unknown customers, event channels taken from their contact) are only
    checked by :func:`load_history`.
    """
    file = find_table(directory, name)
    raw = read_table(file).rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
    if name == "customers":
        frame = normalise_customers(raw, file=str(file))
    elif name == "contacts":
        frame = normalise_contacts(raw, file=str(file))
    else:
        frame, _ = normalise_events(raw, file=str(file))
    return frame.reset_index(drop=True)


def load_history(path: str | Path, *, strict: bool = True) -> History:
    """Load and validate the history tables in directory ``path``.

    Parameters
    ----------
    path
        Directory holding ``customers``, ``contacts`` and ``events`` as ``.csv`` or ``.parquet``.
    strict
        When True (the default), contacts and events of customers missing from ``customers``
        raise; when False they are skipped and counted in ``History.report.skipped``. Exact
        re-deliveries of an event (same ``event_id``, same content) are skipped in both modes.

    Raises
    ------
    HistoryError
        On the first break of the data contract, naming file, column and 1-based data row.
    """
    files = {table: find_table(path, table) for table in TABLES}
    raw = {table: read_table(file) for table, file in files.items()}
    frames, report = normalise_tables(
        raw, files={t: str(f) for t, f in files.items()}, strict=strict
    )
    return History(**frames, report=report)


def write_history(
    history_or_frames: History | Mapping[str, pd.DataFrame],
    out_dir: str | Path,
    *,
    format: Literal["parquet", "csv"] = "parquet",
) -> dict[str, Path]:
    """Write the three tables to ``out_dir`` so that :func:`load_history` reads them back equal.

    Frames that are not yet a :class:`History` are validated first (strictly). CSV times are
    written as ISO 8601 UTC (``2024-05-01T09:30:00Z``), booleans as ``true``/``false`` and missing
    numbers as empty cells. Returns the path written for each table.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r} (expected one of: {', '.join(FORMATS)})")
    if isinstance(history_or_frames, History):
        history = history_or_frames
    else:
        missing = [t for t in TABLES if t not in history_or_frames]
        if missing:
            raise ValueError(f"frames for {', '.join(missing)} are missing")
        history = History.from_frames(**{t: history_or_frames[t] for t in TABLES})
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    other = "csv" if format == "parquet" else "parquet"
    for table in TABLES:
        if (folder / f"{table}.{other}").exists():
            raise HistoryError(
                f"{table}.{other} already exists: writing {table}.{format} beside it would make "
                "the directory ambiguous",
                file=str(folder),
            )
    written: dict[str, Path] = {}
    for table in TABLES:
        frame: pd.DataFrame = getattr(history, table)
        target = folder / f"{table}.{format}"
        if format == "parquet":
            frame.to_parquet(target, index=False)
        else:
            _csv_cells(frame).to_csv(target, index=False)
        written[table] = target
    return written


def _csv_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as CSV cells: exact UTC times, lower-case booleans, empty for missing."""
    cells = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if str(values.dtype) == TIMESTAMP_DTYPE:
            cells[column] = _iso_utc(values)
        elif values.dtype == bool:
            cells[column] = np.where(values.to_numpy(), "true", "false")
    return cells


def _iso_utc(values: pd.Series) -> pd.Series:
    # strftime knows no nanoseconds: add the fraction by hand so a round trip is exact.
    seconds = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
    epoch = values.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")
    nanos = pd.Series(epoch % 1_000_000_000, index=values.index)
    fraction = ("." + nanos.astype(str).str.zfill(9).str.rstrip("0")).where(nanos != 0, "")
    return (seconds + fraction + "Z").where(values.notna(), "")


def _datetimes(values: pd.Series) -> list[Any]:
    # Python datetimes stop at microseconds; records never need the nanoseconds a file may hold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return list(values.dt.to_pydatetime())


def _attribute(value: Any) -> Any:
    if value == "" or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
