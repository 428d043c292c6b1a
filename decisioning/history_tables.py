"""Validation of the three history tables against the data contract, and the report of a load.

Each ``normalise_*`` function checks one table on its own (columns, cell values, duplicate ids);
:func:`link_tables` then checks what the tables say about each other (contacts and events of
customers that do not exist) and skips or fails by the ``strict`` rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from decisioning.actions import Slot
from decisioning.channels import CONSENT_CHANNELS, Channel
from decisioning.errors import HistoryError
from decisioning.history_parse import (
    TEXT_DTYPE,
    as_text,
    check_timezones,
    fail_at,
    first_row,
    member,
    parse_attribute,
    parse_booleans,
    parse_enum,
    parse_floats,
    parse_ids,
    parse_timestamps,
)
from decisioning.records import EventType

TABLES: tuple[str, ...] = ("customers", "contacts", "events")

CONSENT_COLUMNS: tuple[str, ...] = tuple(f"consent_{c.value}" for c in CONSENT_CHANNELS)
#: contract columns of ``customers``, all required; attribute columns follow them
CUSTOMER_COLUMNS: tuple[str, ...] = ("customer_id", "signup_at", "timezone", *CONSENT_COLUMNS)
CONTACT_COLUMNS: tuple[str, ...] = (
    "contact_id", "customer_id", "ts", "channel", "slot", "send_at", "objective", "cost",
    "propensity", "decision_id", "category",
)  # fmt: skip
CONTACT_REQUIRED: tuple[str, ...] = ("contact_id", "customer_id", "ts", "channel")
EVENT_COLUMNS: tuple[str, ...] = (
    "event_id", "customer_id", "ts", "type", "channel", "contact_id", "value", "category",
    "anonymous_id",
)  # fmt: skip
EVENT_REQUIRED: tuple[str, ...] = ("event_id", "customer_id", "ts", "type")
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": CUSTOMER_COLUMNS,
    "contacts": CONTACT_COLUMNS,
    "events": EVENT_COLUMNS,
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "customers": CUSTOMER_COLUMNS,
    "contacts": CONTACT_REQUIRED,
    "events": EVENT_REQUIRED,
}

#: reason for skipping an event row that repeats an earlier row exactly (a re-delivery)
SKIP_DUPLICATE = "duplicate_event"
#: reason for skipping a contact or event row whose customer is not in ``customers``
SKIP_UNKNOWN_CUSTOMER = "unknown_customer"

_CHANNELS = tuple(c.value for c in Channel)
_SLOTS = tuple(s.value for s in Slot)
_EVENT_TYPES = tuple(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load read, kept and skipped, so that nothing is dropped without a trace.

    ``skipped`` maps a table to ``{reason: rows}``; ``warnings`` are findings that changed nothing
    (ignored columns, events naming an unknown contact, sends before their decision).
    """

    sources: dict[str, str]
    rows_read: dict[str, int]
    rows_kept: dict[str, int]
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def rows_skipped(self) -> int:
        return sum(n for reasons in self.skipped.values() for n in reasons.values())

    def summary(self) -> str:
        """A few human-readable lines for logs and the command line."""
        lines = []
        for table in TABLES:
            reasons = self.skipped.get(table, {})
            dropped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
            lines.append(
                f"{table}: {self.rows_read.get(table, 0)} rows read, "
                f"{self.rows_kept.get(table, 0)} kept"
                + (f" (skipped: {dropped})" if dropped else "")
            )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def check_columns(raw: pd.DataFrame, *, table: str, file: str) -> list[str]:
    """Fail when required columns are missing; return the names of columns that will be ignored."""
    missing = [c for c in REQUIRED[table] if c not in raw.columns]
    if missing:
        found = ", ".join(map(str, raw.columns)) or "none"
        raise HistoryError(
            f"missing required columns: {', '.join(missing)} (found: {found})",
            file=file,
            column=missing[0],
        )
    if table == "customers":
        return []
    return [str(c) for c in raw.columns if c not in COLUMNS[table]]


def check_unique(ids: pd.Series, *, file: str, column: str) -> None:
    """Fail on the first id that appears twice, naming both rows."""
    later = ids.duplicated(keep="first")
    if later.any():
        row = first_row(later)
        value = ids.loc[row - 1]
        first = int(ids.index[int(np.argmax((ids == value).to_numpy()))]) + 1
        raise HistoryError(
            f"duplicate {column} {value!r} in rows {first} and {row}",
            file=file,
            column=column,
            row=row,
        )


def normalise_customers(raw: pd.DataFrame, *, file: str) -> pd.DataFrame:
    """The customers table in contract form: contract columns first, then attributes."""
    check_columns(raw, table="customers", file=file)
    out = pd.DataFrame(index=raw.index)
    out["customer_id"] = parse_ids(raw["customer_id"], file=file, column="customer_id")
    out["signup_at"] = parse_timestamps(raw["signup_at"], file=file, column="signup_at")
    zones = parse_ids(raw["timezone"], file=file, column="timezone")
    check_timezones(zones, file=file, column="timezone")
    out["timezone"] = zones
    for column in CONSENT_COLUMNS:
        out[column] = parse_booleans(raw[column], file=file, column=column)
    for column in raw.columns:
        if column not in CUSTOMER_COLUMNS:
            out[str(column)] = parse_attribute(raw[column])
    check_unique(out["customer_id"], file=file, column="customer_id")
    return out


def normalise_contacts(raw: pd.DataFrame, *, file: str) -> pd.DataFrame:
    """The contacts table in contract form, optional columns defaulted."""
    check_columns(raw, table="contacts", file=file)
    n = len(raw)
    out = pd.DataFrame(index=raw.index)
    out["contact_id"] = parse_ids(raw["contact_id"], file=file, column="contact_id")
    out["customer_id"] = parse_ids(raw["customer_id"], file=file, column="customer_id")
    out["ts"] = parse_timestamps(raw["ts"], file=file, column="ts")
    out["channel"] = parse_enum(
        raw["channel"], file=file, column="channel", allowed=_CHANNELS, what="channel"
    )
    out["slot"] = parse_enum(
        _optional(raw, "slot", n),
        file=file,
        column="slot",
        allowed=_SLOTS,
        what="slot",
        default=Slot.NOW.value,
    )
    send_at = parse_timestamps(
        _optional(raw, "send_at", n), file=file, column="send_at", required=False
    )
    out["send_at"] = send_at.fillna(out["ts"])
    out["objective"] = as_text(_optional(raw, "objective", n))
    cost = parse_floats(_optional(raw, "cost", n), file=file, column="cost")
    negative = cost < 0
    if negative.any():
        raise fail_at(negative, cost, "negative cost {value}", file=file, column="cost")
    out["cost"] = cost
    propensity = parse_floats(_optional(raw, "propensity", n), file=file, column="propensity")
    outside = (propensity <= 0) | (propensity > 1)
    if outside.any():
        raise fail_at(
            outside,
            propensity,
            "propensity {value} is outside (0, 1]",
            file=file,
            column="propensity",
        )
    out["propensity"] = propensity
    out["decision_id"] = as_text(_optional(raw, "decision_id", n))
    out["category"] = as_text(_optional(raw, "category", n))
    check_unique(out["contact_id"], file=file, column="contact_id")
    return out


def normalise_events(raw: pd.DataFrame, *, file: str) -> tuple[pd.DataFrame, int]:
    """The events table in contract form, and how many exact re-deliveries were dropped."""
    check_columns(raw, table="events", file=file)
    n = len(raw)
    out = pd.DataFrame(index=raw.index)
    out["event_id"] = parse_ids(raw["event_id"], file=file, column="event_id")
    out["customer_id"] = parse_ids(
        raw["customer_id"], file=file, column="customer_id", allow_empty=True
    )
    out["ts"] = parse_timestamps(raw["ts"], file=file, column="ts")
    out["type"] = parse_enum(
        raw["type"], file=file, column="type", allowed=_EVENT_TYPES, what="event type"
    )
    out["channel"] = parse_enum(
        _optional(raw, "channel", n),
        file=file,
        column="channel",
        allowed=_CHANNELS,
        what="channel",
        default="",
    )
    out["contact_id"] = as_text(_optional(raw, "contact_id", n))
    out["value"] = parse_floats(_optional(raw, "value", n), file=file, column="value")
    out["category"] = as_text(_optional(raw, "category", n))
    out["anonymous_id"] = as_text(_optional(raw, "anonymous_id", n))
    nobody = (out["customer_id"] == "") & (out["anonymous_id"] == "")
    if nobody.any():
        raise fail_at(
            nobody,
            out["event_id"],
            "event {value} has an empty customer_id and no anonymous_id",
            file=file,
            column="customer_id",
        )
    out, repeats = _drop_redeliveries(out, file=file)
    return out, repeats


def _drop_redeliveries(events: pd.DataFrame, *, file: str) -> tuple[pd.DataFrame, int]:
    # Re-delivery of the same event is normal in event pipelines; the same id with other content
    # is two different facts under one name, which no replay can resolve.
    shared = events["event_id"].duplicated(keep=False)
    if not shared.any():
        return events, 0
    repeat = events[shared].duplicated(keep="first")
    events = events.drop(index=repeat[repeat].index)
    later = events["event_id"].duplicated(keep="first")
    if later.any():
        row = first_row(later)
        value = events.loc[row - 1, "event_id"]
        same_id = events[events["event_id"] == value]
        first = int(same_id.index[0]) + 1
        a, b = same_id.loc[first - 1], same_id.loc[row - 1]
        differs = [c for c in events.columns if not _same(a[c], b[c])]
        raise HistoryError(
            f"event_id {value!r} in rows {first} and {row} with different content "
            f"(differs in: {', '.join(differs)})",
            file=file,
            column="event_id",
            row=row,
        )
    return events, int(repeat.sum())


def link_tables(
    customers: pd.DataFrame,
    contacts: pd.DataFrame,
    events: pd.DataFrame,
    *,
    files: Mapping[str, str],
    strict: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, int]], list[str]]:
    """Check contacts and events against customers, then fill event channels from contacts.

    Returns the kept contacts and events, the skipped counts and the warnings.
    """
    skipped: dict[str, dict[str, int]] = {}
    warnings: list[str] = []
    known = customers["customer_id"]
    stray = ~member(contacts["customer_id"], known)
    contacts = _unknown_customers(contacts, stray, "contacts", files, strict, skipped, warnings)
    stray = (events["customer_id"] != "") & ~member(events["customer_id"], known)
    events = _unknown_customers(events, stray, "events", files, strict, skipped, warnings)

    by_contact = pd.Series(contacts["channel"].to_numpy(), index=contacts["contact_id"].to_numpy())
    names = events["contact_id"] != ""
    dangling = names & ~member(events["contact_id"], contacts["contact_id"])
    if dangling.any():
        row = first_row(dangling)
        warnings.append(
            f"{files['events']}: {int(dangling.sum())} events name a contact_id that is not in "
            f"{files['contacts']} (first: row {row}, {events.loc[row - 1, 'contact_id']!r})"
        )
    # An open or a click belongs to the channel of the message it answers, when not given.
    unfilled = (events["channel"] == "") & names & ~dangling
    if unfilled.any():
        events = events.copy()
        events.loc[unfilled, "channel"] = events.loc[unfilled, "contact_id"].map(by_contact)
        events["channel"] = events["channel"].astype(TEXT_DTYPE)
    early = contacts["send_at"] < contacts["ts"]
    if early.any():
        warnings.append(
            f"{files['contacts']}: {int(early.sum())} contacts have send_at before ts "
            f"(first: row {first_row(early)})"
        )
    return contacts, events, skipped, warnings


def _unknown_customers(
    frame: pd.DataFrame,
    stray: pd.Series,
    table: str,
    files: Mapping[str, str],
    strict: bool,
    skipped: dict[str, dict[str, int]],
    warnings: list[str],
) -> pd.DataFrame:
    if not stray.any():
        return frame
    if strict:
        raise fail_at(
            stray,
            frame["customer_id"],
            f"unknown customer_id {{value}} (not in {files['customers']}; "
            "load with strict=False to skip such rows)",
            file=files[table],
            column="customer_id",
        )
    count = int(stray.sum())
    skipped.setdefault(table, {})[SKIP_UNKNOWN_CUSTOMER] = count
    row = first_row(stray)
    warnings.append(
        f"{files[table]}: skipped {count} rows of customers not in {files['customers']} "
        f"(first: row {row}, customer_id {frame.loc[row - 1, 'customer_id']!r})"
    )
    return frame[~stray]


def normalise_tables(
    raw: Mapping[str, pd.DataFrame], *, files: Mapping[str, str], strict: bool
) -> tuple[dict[str, pd.DataFrame], LoadReport]:
    """All three tables checked, normalised and linked, with the report of what was kept.

    ``raw`` maps each table name to its frame as read; ``files`` maps it to the name errors use.
    """
    frames = {
        table: raw[table].rename(columns=lambda c: str(c).strip()).reset_index(drop=True)
        for table in TABLES
    }
    warnings: list[str] = []
    for table in TABLES:
        ignored = check_columns(frames[table], table=table, file=files[table])
        if ignored:
            warnings.append(
                f"{files[table]}: ignored columns not in the contract: {', '.join(ignored)}"
            )
    customers = normalise_customers(frames["customers"], file=files["customers"])
    contacts = normalise_contacts(frames["contacts"], file=files["contacts"])
    events, repeats = normalise_events(frames["events"], file=files["events"])
    if repeats:
        warnings.append(f"{files['events']}: skipped {repeats} exact re-deliveries of events")
    contacts, events, skipped, linked = link_tables(
        customers, contacts, events, files=files, strict=strict
    )
    if repeats:
        skipped.setdefault("events", {})[SKIP_DUPLICATE] = repeats
    kept = {
        "customers": customers.reset_index(drop=True),
        "contacts": contacts.reset_index(drop=True),
        "events": events.reset_index(drop=True),
    }
    report = LoadReport(
        sources={table: files[table] for table in TABLES},
        rows_read={table: len(frames[table]) for table in TABLES},
        rows_kept={table: len(kept[table]) for table in TABLES},
        skipped=skipped,
        warnings=(*warnings, *linked),
    )
    return kept, report


def _optional(raw: pd.DataFrame, column: str, n: int) -> pd.Series:
    if column in raw.columns:
        return raw[column]
    return pd.Series([""] * n, index=raw.index, dtype=TEXT_DTYPE)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return bool(a == b)
