"""Segment expressions: who an objective is for, e.g. ``plan == "basic" and tenure_days < 90``.

A segment is parsed once with :func:`ast.parse` and checked against a whitelist of node types
(``and``/``or``/``not``, comparisons, field names, constants, tuples of constants) and against a
field catalogue (name -> ``"number"``, ``"text"`` or ``"bool"``); it is never evaluated as
Python. The checked tree (:mod:`decisioning.segment_eval`) compiles to nested closures for one
customer (:meth:`Segment.matches`) and to array operations for a table (:meth:`Segment.mask`).

A missing value (absent key or column, ``None``, NaN, or a value of another type than the
field's kind) makes every comparison on that field False, ``!=`` and ``not in`` included, and
a bare field (``ticket_open``) False; ``not (...)`` still negates the whole condition.
"""

from __future__ import annotations

import ast
import difflib
import numbers
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from decisioning.errors import SegmentError
from decisioning.features import BEHAVIOUR_FEATURES
from decisioning.segment_eval import (
    BoolOp,
    Columns,
    Compare,
    Const,
    Field,
    Matcher,
    Member,
    Node,
    Not,
    Truthy,
)

FieldKind = Literal["number", "text", "bool"]
KINDS: tuple[str, ...] = ("number", "text", "bool")
_MAX_LENGTH = 2000

_SYMBOLS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt,
    "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}  # fmt: skip
#: the same comparison read from the other side (90 > tenure_days is tenure_days < 90)
_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access (a.b) is not allowed",
    ast.Subscript: "subscripts (a[b]) are not allowed",
    ast.Lambda: "lambda is not allowed",
    **dict.fromkeys(
        (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp),
        "comprehensions are not allowed",
    ),
    ast.JoinedStr: "f-strings are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.NamedExpr: "assignments (:=) are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: 'sets are not allowed; list values as a tuple, e.g. ("a", "b")',
}


# -- field kinds and the catalogue ---------------------------------------------------------------


def _kind_of(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, numbers.Real):
        return "number"
    return "text" if isinstance(value, str) else "other"


def infer_kind(values: Iterable[Any] | pd.Series) -> FieldKind | None:
    """The field kind of a column of values, or None when it holds nothing a segment can test.

    Booleans give ``"bool"``, numbers ``"number"``, any string ``"text"``; columns of dates,
    lists or only missing values give None.
    """
    if isinstance(values, pd.Series):
        if pd.api.types.is_bool_dtype(values.dtype):
            return "bool"
        if pd.api.types.is_numeric_dtype(values.dtype):
            return "number"
        values = values.to_numpy(dtype=object)
    seen = {_kind_of(v) for v in values} - {None}
    if "text" in seen:
        return "text"
    if seen == {"bool"}:
        return "bool"
    return "number" if seen and seen <= {"bool", "number"} else None


def attribute_kinds(
    customers: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    exclude: Iterable[str] = ("customer_id",),
) -> dict[str, FieldKind]:
    """Field kinds of the customers' attributes, from the customers table or attribute dicts."""
    skip = set(exclude)
    columns: dict[str, Any] = {}
    if isinstance(customers, pd.DataFrame):
        columns = {str(c): customers[c] for c in customers.columns if str(c) not in skip}
    else:
        for attributes in customers:
            for name, value in attributes.items():
                if name not in skip:
                    columns.setdefault(name, []).append(value)
    kinds = {name: infer_kind(values) for name, values in columns.items()}
    return {name: kind for name, kind in kinds.items() if kind is not None}


def field_catalogue(
    attributes: Mapping[str, str] | pd.DataFrame | None = None,
) -> dict[str, FieldKind]:
    """The fields a segment may use: the behavioural features (numbers) and the attributes.

    ``attributes`` maps attribute names to kinds, or is the customers table (kinds inferred).
    A behavioural feature wins over an attribute of the same name: it is what decisions see.
    """
    if isinstance(attributes, pd.DataFrame):
        attributes = attribute_kinds(attributes)
    catalogue: dict[str, FieldKind] = {}
    for name, kind in (attributes or {}).items():
        if kind not in KINDS:
            raise SegmentError(f"field {name!r} has kind {kind!r} (expected one of {KINDS})")
        catalogue[name] = kind  # type: ignore[assignment]
    catalogue.update(dict.fromkeys(BEHAVIOUR_FEATURES, "number"))
    return catalogue


# -- the segment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A parsed, checked segment expression; build it with :meth:`Segment.parse`."""

    text: str
    fields_used: tuple[str, ...]
    _root: Node | None = field(default=None, repr=False, compare=False)
    _match: Matcher | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, fields: Mapping[str, str] | None = None) -> Segment:
        """Parse and check ``text`` against ``fields`` (default: :func:`field_catalogue`).

        Empty text or ``all`` is every customer.

        Raises
        ------
        SegmentError
            Bad syntax (with the column and a caret), a forbidden construct, an unknown field
            (with the closest names), or a comparison between mismatched kinds.
        """
        checker = _Checker(text, field_catalogue() if fields is None else fields)
        root = checker.run()
        if root is None:
            return cls.everyone()
        return cls(checker.source, tuple(checker.used), root, root.compile())

    @classmethod
    def everyone(cls) -> Segment:
        """The segment of every customer."""
        return cls("", ())

    @property
    def is_everyone(self) -> bool:
        return self._root is None

    @property
    def uses_behaviour(self) -> bool:
        """Whether a behavioural feature is among its fields (else attributes alone decide)."""
        return not _BEHAVIOUR.isdisjoint(self.fields_used)

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether one customer, given by its field values, is in the segment."""
        return True if self._match is None else self._match(values)

    def matches_customer(self, features: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
        """:meth:`matches` for a customer's behavioural features and attributes (an attribute
        wins over a feature of the same name), without merging them into one mapping."""
        return True if self._match is None else self._match(_CustomerFields(features, attributes))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` (one column per field) are in the segment, as a bool array."""
        if self._root is None:
            return np.ones(len(frame), dtype=bool)
        return np.asarray(self._root.mask(Columns(frame)), dtype=bool).reshape(len(frame))

    def __str__(self) -> str:
        return self.text or "all"


_ABSENT = object()
_BEHAVIOUR = frozenset(BEHAVIOUR_FEATURES)


class _CustomerFields(Mapping[str, Any]):
    """A customer's features and attributes read as one mapping (an attribute wins)."""

    __slots__ = ("features", "attributes")

    def __init__(self, features: Mapping[str, Any], attributes: Mapping[str, Any]) -> None:
        self.features, self.attributes = features, attributes

    def get(self, key: str, default: Any = None) -> Any:  # what matchers call: two dict reads
        value = self.attributes.get(key, _ABSENT)
        return self.features.get(key, default) if value is _ABSENT else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter({**self.features, **self.attributes})

    def __len__(self) -> int:
        return len({**self.features, **self.attributes})


def check_segment_syntax(text: str) -> tuple[str, ...]:
    """Check ``text`` without a field catalogue (syntax, whitelist, constants); fields used."""
    checker = _Checker(text, None)
    checker.run()
    return tuple(checker.used)


class _Checker:
    """Walks the AST of a segment and builds the checked tree, or raises a located error."""

    def __init__(self, text: str, fields: Mapping[str, str] | None) -> None:
        if not isinstance(text, str):
            raise SegmentError(f"a segment is text, not {type(text).__name__}")
        # One line, so that every position is a column of the text the marketer wrote.
        line = text.replace("\r", " ").replace("\n", " ")
        self.source = line.strip()
        self.line, self.lead = line.rstrip(), len(line) - len(line.lstrip())
        self.fields, self.used = fields, dict[str, None]()

    def run(self) -> Node | None:
        if self.source.lower() in ("", "all"):
            return None
        if len(self.source) > _MAX_LENGTH:
            raise SegmentError(f"segment is longer than {_MAX_LENGTH} characters")
        if "\x00" in self.source:
            raise SegmentError("segment contains a NUL character")
        try:
            tree = ast.parse(self.source, mode="eval")
            return self.condition(tree.body)
        except SyntaxError as exc:
            col = exc.offset - 1 if exc.offset and exc.lineno == 1 else len(self.source)
            detail = "" if exc.msg == "invalid syntax" else f" ({exc.msg})"
            raise self.located(f"invalid syntax{detail}", col) from None
        except (ValueError, RecursionError, MemoryError) as exc:
            if isinstance(exc, SegmentError):
                raise
            raise SegmentError(f"segment cannot be parsed ({type(exc).__name__})") from None

    def located(self, message: str, col: int) -> SegmentError:
        col = min(max(col, 0), len(self.source)) + self.lead
        return SegmentError(f"{message} at column {col + 1}:\n  {self.line}\n  {' ' * col}^")

    def error(self, node: ast.AST, message: str) -> SegmentError:
        # ast offsets count UTF-8 bytes; the caret counts characters.
        prefix = self.source.encode()[: getattr(node, "col_offset", 0)]
        return self.located(message, len(prefix.decode(errors="ignore")))

    def forbidden(self, node: ast.AST) -> SegmentError:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd | ast.BitOr):
            return self.error(node, "use 'and' / 'or' instead of '&' / '|'")
        if isinstance(node, ast.BinOp):
            return self.error(node, "arithmetic is not allowed")
        if isinstance(node, ast.UnaryOp):
            return self.error(node, "only 'not' and a minus sign before a number are allowed")
        return self.error(node, _FORBIDDEN.get(type(node), f"{type(node).__name__} is not allowed"))

    def condition(self, node: ast.expr) -> Node:
        if isinstance(node, ast.BoolOp):
            parts = tuple(self.condition(v) for v in node.values)
            return BoolOp(parts, conjunction=isinstance(node.op, ast.And))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.condition(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Name):
            ref = self.field(node)
            if ref.kind == "text":
                hint = f'compare it, e.g. {ref.name} == "..."'
                raise self.error(node, f"text field {ref.name!r} is not a condition; {hint}")
            return Truthy(ref)
        if isinstance(node, ast.Constant | ast.Tuple | ast.List):
            raise self.error(node, "a constant is not a condition; compare a field with it")
        raise self.forbidden(node)

    def field(self, node: ast.Name) -> Field:
        name = node.id
        if self.fields is not None and name not in self.fields:
            close = difflib.get_close_matches(name, list(self.fields), n=3, cutoff=0.6)
            hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
            raise self.error(node, f"unknown field {name!r}{hint}")
        self.used.setdefault(name)
        return Field(name, None if self.fields is None else self.fields[name])

    def constant(self, node: ast.expr) -> Const:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.constant(node.operand) if isinstance(node.operand, ast.Constant) else None
            if inner is None or inner.kind != "number":
                raise self.error(node, "a minus sign goes before a number only")
            return Const(-inner.value, "number")
        if not isinstance(node, ast.Constant):
            raise self.forbidden(node)
        value = node.value
        if isinstance(value, bool):
            return Const(value, "bool")
        if isinstance(value, int | float) and abs(value) < 1e300:
            return Const(value, "number")
        if isinstance(value, str):
            return Const(value, "text")
        shown = "None" if value is None else f"the value {value!r}"[:40]
        raise self.error(node, f"{shown} is not allowed; use a string, a number, True or False")

    def operand(self, node: ast.expr) -> Field | Const:
        if isinstance(node, ast.Name):
            return self.field(node)
        if isinstance(node, ast.Tuple | ast.List):
            raise self.error(node, "a list of values goes after 'in' or 'not in' only")
        return self.constant(node)

    def compare(self, node: ast.Compare) -> Node:
        terms, parts = [node.left, *node.comparators], list[Node]()
        for i, op in enumerate(node.ops):
            if isinstance(op, ast.In | ast.NotIn):
                if i + 1 < len(node.ops):
                    raise self.error(terms[i + 1], "a list of values cannot be compared further")
                parts.append(self.member(terms[i], terms[i + 1], negate=isinstance(op, ast.NotIn)))
            elif type(op) in _SYMBOLS:
                parts.append(
                    self.pair(node, op, self.operand(terms[i]), self.operand(terms[i + 1]))
                )
            else:
                raise self.error(node, "use == / != instead of 'is' / 'is not'")
        return parts[0] if len(parts) == 1 else BoolOp(tuple(parts), conjunction=True)

    def pair(self, node: ast.AST, op: ast.cmpop, left: Field | Const, right: Field | Const) -> Node:
        symbol = _SYMBOLS[type(op)]
        if isinstance(left, Const) and isinstance(right, Const):
            raise self.error(node, "this compares two constants; one side must be a field")
        kinds, what = {left.kind, right.kind} - {None}, f"{_shown(left)} and {_shown(right)}"
        if symbol in ("<", "<=", ">", ">=") and not kinds <= {"number"}:
            raise self.error(node, f"ordering ({symbol}) needs numbers, not {what}")
        # A number field equals True / False as 1 / 0, like the 0/1 flags among the features.
        flag = kinds == {"number", "bool"} and "bool" in (_const_kind(left), _const_kind(right))
        if len(kinds) > 1 and not flag:
            raise self.error(node, f"cannot compare {what}")
        if flag:
            left, right = _as_number_const(left), _as_number_const(right)
        if isinstance(left, Const):
            symbol, left, right = _FLIPPED[symbol], right, left
        assert isinstance(left, Field)  # two constants were refused above
        return Compare(left, right, _OPS[symbol])

    def member(self, left: ast.expr, right: ast.expr, *, negate: bool) -> Node:
        if not isinstance(left, ast.Name):
            raise self.error(left, "the left side of 'in' / 'not in' must be a field")
        ref = self.field(left)
        if isinstance(right, ast.Set):
            raise self.forbidden(right)
        if not isinstance(right, ast.Tuple | ast.List):
            raise self.error(right, '\'in\' needs a tuple of values, e.g. ("a", "b")')
        if not right.elts:
            raise self.error(right, "an empty list of values matches nobody")
        values = [self.constant(v) for v in right.elts]
        kinds = {v.kind for v in values}
        expected = ref.kind or (next(iter(kinds - {"bool"})) if kinds != {"bool"} else "bool")
        allowed = {expected, "bool"} if expected == "number" else {expected}
        if not kinds <= allowed:
            raise self.error(
                right, f"the values after 'in' must be {expected} values for {_shown(ref)}"
            )
        if expected == "number":
            values = [Const(float(v.value), "number") for v in values]
        return Member(ref, tuple(v.value for v in values), negate)


def _const_kind(term: Field | Const) -> str | None:
    return term.kind if isinstance(term, Const) else None


def _as_number_const(term: Field | Const) -> Field | Const:
    return Const(float(term.value), "number") if isinstance(term, Const) else term


def _shown(term: Field | Const) -> str:
    if isinstance(term, Field):
        return f"{term.kind} field {term.name!r}" if term.kind else f"field {term.name!r}"
    return f"the {term.kind} {term.value!r}"
