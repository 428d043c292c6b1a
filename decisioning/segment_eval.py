"""Evaluating a checked segment: the tree of conditions, as closures and as array operations.

:class:`decisioning.segment.Segment` parses and checks the text and builds a tree of the nodes
below; each node compiles to a closure that tests one customer's values (:meth:`Node.compile`)
and evaluates over the columns of a table at once (:meth:`Node.mask`). A missing value, or one
of another kind than the field's, makes every comparison on that field False.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from decisioning.errors import SegmentError

Matcher = Callable[[Mapping[str, Any]], bool]

# -- values of one customer and columns of a table, coerced to a field's kind -------------------


def _as_number(value: Any) -> float | None:
    if isinstance(value, numbers.Real | np.bool_):
        x = float(value)
        return None if x != x else x
    return None


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _as_bool(value: Any) -> bool | None:
    return bool(value) if isinstance(value, bool | np.bool_) else None


COERCE: dict[str, Callable[[Any], Any]] = {
    "number": _as_number,
    "text": _as_text,
    "bool": _as_bool,
}


class Columns:
    """The columns of a table coerced once per field: (values, valid) arrays."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.n = frame, len(frame)
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, ref: Field) -> tuple[np.ndarray, np.ndarray]:
        if ref.name not in self.cache:
            self.cache[ref.name] = self._coerce(ref)
        return self.cache[ref.name]

    def _coerce(self, ref: Field) -> tuple[np.ndarray, np.ndarray]:
        n, kind = self.n, ref.kind
        if ref.name not in self.frame.columns:
            return np.zeros(n), np.zeros(n, dtype=bool)
        column = self.frame[ref.name]
        if isinstance(column, pd.DataFrame):
            raise SegmentError(f"column {ref.name!r} appears more than once in the table")
        numeric = pd.api.types.is_numeric_dtype(column.dtype)
        if kind == "number" and numeric:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            return values, ~np.isnan(values)
        if kind == "bool" and column.dtype == bool:
            return column.to_numpy(dtype=bool), np.ones(n, dtype=bool)
        coerce = COERCE[kind or "text"]
        cells = [coerce(v) for v in column.to_numpy(dtype=object)]
        valid = np.fromiter((c is not None for c in cells), dtype=bool, count=n)
        blank = {"number": 0.0, "text": "", "bool": False}[kind or "text"]
        dtype = {"number": float, "text": object, "bool": bool}[kind or "text"]
        values = np.array([blank if c is None else c for c in cells], dtype=dtype)
        return values, valid


# -- the checked tree: each node compiles to a closure and evaluates over columns --------------


@dataclass(frozen=True, slots=True)
class Field:
    """A field the segment reads, with its kind (None when checked without a catalogue)."""

    name: str
    kind: str | None


@dataclass(frozen=True, slots=True)
class Const:
    """A constant in the segment, with its kind."""

    value: Any
    kind: str


class Node:
    """A condition of the checked tree: tests one customer, or every row of a table."""

    def compile(self) -> Matcher:
        raise NotImplementedError

    def mask(self, cols: Columns) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class BoolOp(Node):
    """``and`` (``conjunction``) or ``or`` of its parts, stopping at the first that decides."""

    parts: tuple[Node, ...]
    conjunction: bool

    def compile(self) -> Matcher:
        fns, stop = tuple(p.compile() for p in self.parts), not self.conjunction

        def run(values: Mapping[str, Any]) -> bool:
            for fn in fns:
                if fn(values) is stop:
                    return stop
            return not stop

        return run

    def mask(self, cols: Columns) -> np.ndarray:
        reduce = np.logical_and if self.conjunction else np.logical_or
        return reduce.reduce([p.mask(cols) for p in self.parts])


@dataclass(frozen=True)
class Not(Node):
    """``not`` of its part."""

    part: Node

    def compile(self) -> Matcher:
        fn = self.part.compile()
        return lambda values: not fn(values)

    def mask(self, cols: Columns) -> np.ndarray:
        return ~self.part.mask(cols)


@dataclass(frozen=True)
class Truthy(Node):
    """A bare field used as a condition: true when present and non-zero."""

    ref: Field

    def compile(self) -> Matcher:
        name, coerce = self.ref.name, COERCE[self.ref.kind or "number"]
        return lambda values: bool(coerce(values.get(name)))

    def mask(self, cols: Columns) -> np.ndarray:
        values, valid = cols.get(self.ref)
        return valid & (values != 0)


@dataclass(frozen=True)
class Compare(Node):
    """A field compared with a constant or another field."""

    left: Field  # a constant on the left is swapped to the right at parse time
    right: Field | Const
    op: Callable[[Any, Any], Any]

    def compile(self) -> Matcher:
        op, left, right = self.op, self.left, self.right
        lname, lcoerce = left.name, COERCE[left.kind or "text"]
        if isinstance(right, Const):
            c = right.value
            return lambda v: (x := lcoerce(v.get(lname))) is not None and bool(op(x, c))
        rname, rcoerce = right.name, COERCE[right.kind or "text"]

        def field_field(v: Mapping[str, Any]) -> bool:
            x, y = lcoerce(v.get(lname)), rcoerce(v.get(rname))
            return x is not None and y is not None and bool(op(x, y))

        return field_field

    def mask(self, cols: Columns) -> np.ndarray:
        left, ok = cols.get(self.left)
        if isinstance(self.right, Const):
            right = self.right.value
        else:
            right, valid = cols.get(self.right)
            ok = ok & valid
        return ok & np.asarray(self.op(left, right), dtype=bool)


@dataclass(frozen=True)
class Member(Node):
    """``in`` / ``not in`` a tuple of constants."""

    ref: Field
    items: tuple[Any, ...]
    negate: bool

    def compile(self) -> Matcher:
        name, coerce, negate = self.ref.name, COERCE[self.ref.kind or "text"], self.negate
        items = frozenset(self.items)
        return lambda v: (x := coerce(v.get(name))) is not None and (x in items) is not negate

    def mask(self, cols: Columns) -> np.ndarray:
        values, valid = cols.get(self.ref)
        found = pd.Series(values, copy=False).isin(list(self.items)).to_numpy(dtype=bool)
        return valid & (found != self.negate)
