"""Column parsers of the history data contract: raw cells in, typed pandas columns out.

Every parser takes the raw column as read from CSV (strings, ``""`` when empty) or Parquet (typed),
returns the normalised column, and raises :class:`HistoryError` naming the file, the column and the
1-based data row of the first bad cell. The series index must be the 0-based data row.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types as ptypes

from decisioning.actions import zone
from decisioning.errors import HistoryError

#: the dtype of every normalised timestamp column
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
#: the dtype of every normalised text column (ids, channel, type, slot, free text)
TEXT_DTYPE = "str"

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
# Spellings of "no value" that spreadsheet and dataframe exports write into numeric cells.
_MISSING_NUMBER = frozenset({"", "nan", "null", "none", "na", "n/a"})
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_TS_MIN = pd.Timestamp.min.tz_localize("UTC")
_TS_MAX = pd.Timestamp.max.tz_localize("UTC")


def first_row(mask: pd.Series) -> int:
    """The 1-based data row of the first True in ``mask`` (which must have one)."""
    return int(mask.index[int(np.argmax(mask.to_numpy(dtype=bool)))]) + 1


def fail_at(
    mask: pd.Series, values: pd.Series, message: str, *, file: str, column: str
) -> HistoryError:
    """The error for the first flagged cell; ``message`` may use ``{value}`` (the cell's repr)."""
    pos = int(np.argmax(mask.to_numpy(dtype=bool)))
    value = values.iloc[pos]
    if isinstance(value, np.generic):
        value = value.item()  # show 0.5, not np.float64(0.5)
    count = int(mask.sum())
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    return HistoryError(
        message.format(value=repr(value)) + more,
        file=file,
        column=column,
        row=int(mask.index[pos]) + 1,
    )


def member(values: pd.Series, allowed: Collection[str] | pd.Series) -> pd.Series:
    """Which text cells are in ``allowed`` (Arrow's hash lookup: several times faster than isin)."""
    if len(values) == 0:
        return pd.Series(False, index=values.index, dtype=bool)
    value_set = pa.array(
        allowed if isinstance(allowed, pd.Series) else list(allowed), pa.large_string()
    )
    found = pc.is_in(pa.array(values, pa.large_string()), value_set=value_set)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index, dtype=bool)


def as_text(raw: pd.Series) -> pd.Series:
    """Cells as stripped strings, ``""`` for empty: ids written as integers stay integers."""
    if ptypes.is_bool_dtype(raw):
        text = raw.map({True: "true", False: "false"})
    elif ptypes.is_integer_dtype(raw):
        text = raw.astype("Int64").astype(TEXT_DTYPE)
    elif ptypes.is_float_dtype(raw):
        finite = raw.dropna()
        if bool((finite == np.floor(finite)).all()) and bool((finite.abs() < 2**53).all()):
            # integer ids that picked up a NaN somewhere became floats: write them back as ints
            text = raw.astype("Int64").astype(TEXT_DTYPE)
        else:
            text = raw.astype(TEXT_DTYPE)
    else:
        text = raw.astype(TEXT_DTYPE)
    return text.fillna("").str.strip().astype(TEXT_DTYPE)


def parse_ids(raw: pd.Series, *, file: str, column: str, allow_empty: bool = False) -> pd.Series:
    """Identifiers as strings; empty ones are an error unless ``allow_empty``."""
    ids = as_text(raw)
    if not allow_empty:
        empty = ids == ""
        if empty.any():
            raise fail_at(empty, ids, f"empty {column}", file=file, column=column)
    return ids


def parse_enum(
    raw: pd.Series,
    *,
    file: str,
    column: str,
    allowed: Collection[str],
    what: str,
    default: str | None = None,
) -> pd.Series:
    """Names of an enumeration, case-insensitive; empty cells take ``default`` (or fail)."""
    text = as_text(raw).str.lower()
    empty = text == ""
    if default is not None:
        text = text.mask(empty, default)
    elif empty.any():
        raise fail_at(empty, text, f"empty {column}", file=file, column=column)
    unknown = ~member(text, allowed) & (text != "")
    if unknown.any():
        valid = ", ".join(allowed)
        raise fail_at(
            unknown,
            as_text(raw),
            f"unknown {what} {{value}} (expected one of: {valid})",
            file=file,
            column=column,
        )
    return text.astype(TEXT_DTYPE)


def parse_timestamps(raw: pd.Series, *, file: str, column: str, required: bool = True) -> pd.Series:
    """Instants as UTC-aware nanosecond timestamps; naive values are read as UTC.

    Text must be ISO 8601 (``2024-05-01T09:30:00Z``, ``2024-05-01 09:30:00+02:00``,
    ``2024-05-01``); Parquet timestamp columns are taken as they are. Missing cells are NaT when
    not ``required``.
    """
    if ptypes.is_datetime64_any_dtype(raw):
        parsed = raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
        missing = parsed.isna()
        bad = pd.Series(False, index=raw.index)
        shown = raw  # typed cells are shown as they are, and only when one is wrong
    else:
        shown = as_text(raw)
        missing = shown == ""
        parsed = pd.to_datetime(shown.mask(missing), utc=True, format="ISO8601", errors="coerce")
        bad = parsed.isna() & ~missing
    if bad.any():
        raise fail_at(
            bad,
            shown,
            "unparseable timestamp {value} (expected ISO 8601, e.g. 2024-05-01T09:30:00Z)",
            file=file,
            column=column,
        )
    out_of_range = parsed.notna() & ((parsed < _TS_MIN) | (parsed > _TS_MAX))
    if out_of_range.any():
        raise fail_at(
            out_of_range,
            shown,
            "timestamp {value} is outside the supported range (years 1678-2261)",
            file=file,
            column=column,
        )
    if required and missing.any():
        raise fail_at(missing, shown, f"empty {column}", file=file, column=column)
    return parsed.astype(TIMESTAMP_DTYPE)


def parse_booleans(raw: pd.Series, *, file: str, column: str) -> pd.Series:
    """Flags as numpy booleans: true/false, 1/0, yes/no in any case; empty is an error."""
    if ptypes.is_bool_dtype(raw) and not raw.isna().any():
        return raw.astype(bool)
    text = as_text(raw).str.lower()
    truthy = member(text, TRUE_WORDS)
    bad = ~truthy & ~member(text, FALSE_WORDS)
    if bad.any():
        raise fail_at(
            bad,
            as_text(raw),
            "bad boolean {value} (expected true/false, 1/0 or yes/no)",
            file=file,
            column=column,
        )
    return truthy.astype(bool)


def parse_floats(raw: pd.Series, *, file: str, column: str) -> pd.Series:
    """Numbers as float64, NaN where the cell is empty; infinities are an error."""
    if ptypes.is_numeric_dtype(raw) and not ptypes.is_bool_dtype(raw):
        values = raw.astype("float64")
        shown = raw.astype(TEXT_DTYPE)
    else:
        shown = as_text(raw)
        missing = member(shown.str.lower(), _MISSING_NUMBER)
        values = pd.to_numeric(shown.mask(missing), errors="coerce").astype("float64")
        bad = values.isna() & ~missing
        if bad.any():
            raise fail_at(bad, shown, "not a number: {value}", file=file, column=column)
    infinite = np.isinf(values)
    if infinite.any():
        raise fail_at(infinite, shown, "not a finite number: {value}", file=file, column=column)
    return values


def check_timezones(zones: pd.Series, *, file: str, column: str) -> None:
    """Fail on the first cell that is not an IANA time zone name (each name is looked up once)."""
    bad_names = set()
    for name in zones.unique():
        try:
            zone(name)
        except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
            bad_names.add(name)
    if bad_names:
        bad = zones.isin(list(bad_names))
        raise fail_at(
            bad,
            zones,
            "unknown timezone {value} (expected an IANA name such as Europe/Paris)",
            file=file,
            column=column,
        )


def parse_attribute(raw: pd.Series) -> pd.Series:
    """A free customer attribute: numbers when every filled cell is one, else text.

    Whole numbers with no gaps become int64, other numbers float64 (NaN where empty). Codes with a
    leading zero (postcodes, phone prefixes) stay text so ``02139`` is not turned into 2139.
    """
    if ptypes.is_bool_dtype(raw):
        return as_text(raw)
    if ptypes.is_numeric_dtype(raw):
        values = raw.astype("float64")
    else:
        text = as_text(raw)
        filled = text[text != ""]
        if filled.empty or filled.str.match(_LEADING_ZERO).any():
            return text
        values = pd.to_numeric(text.mask(text == ""), errors="coerce").astype("float64")
        if (values.isna() & (text != "")).any():
            return text
    finite = values.dropna()
    whole = bool((finite == np.floor(finite)).all()) and bool((finite.abs() < 2**53).all())
    if whole and not values.isna().any() and not np.isinf(values).any():
        return values.astype("int64")
    return values
