"""Segment expressions: parsing, the whitelist, located errors, and one-row vs table agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from decisioning.errors import SegmentError
from decisioning.features import BEHAVIOUR_FEATURES
from decisioning.segment import (
    Segment,
    attribute_kinds,
    check_segment_syntax,
    field_catalogue,
    infer_kind,
)

FIELDS = field_catalogue({"plan": "text", "segment": "text", "country": "text", "vip": "bool"})


@pytest.mark.parametrize(
    ("text", "row", "expected"),
    [
        ('plan == "basic" and tenure_days < 90', {"plan": "basic", "tenure_days": 30.0}, True),
        ('plan == "basic" and tenure_days < 90', {"plan": "basic", "tenure_days": 90.0}, False),
        # a missing flag is False, so ``not ticket_open`` holds
        ('segment in ("family", "senior") and not ticket_open', {"segment": "senior"}, True),
        ('segment in ("family", "senior")', {"segment": "other"}, False),
        (
            'segment in ("family", "senior") and not ticket_open',
            {"segment": "senior", "ticket_open": 0.0},
            True,
        ),
        (
            'email_open_rate >= 0.2 or country != "FR"',
            {"email_open_rate": 0.1, "country": "DE"},
            True,
        ),
        (
            'email_open_rate >= 0.2 or country != "FR"',
            {"email_open_rate": 0.1, "country": "FR"},
            False,
        ),
        ("90 > tenure_days", {"tenure_days": 89}, True),
        ("0 < tenure_days <= 30", {"tenure_days": 30}, True),
        ("0 < tenure_days <= 30", {"tenure_days": 0}, False),
        ("tenure_days > -1", {"tenure_days": 0}, True),
        ("vip and consent_email == True", {"vip": True, "consent_email": 1.0}, True),
        ("not vip", {"vip": np.bool_(False)}, True),
        ('country not in ["FR", "BE"]', {"country": "DE"}, True),
        ("tenure_days in (1, 2.5)", {"tenure_days": np.int64(1)}, True),
        ("email_open_rate > sms_open_rate", {"email_open_rate": 0.3, "sms_open_rate": 0.2}, True),
    ],
)
def test_matches_examples(text: str, row: dict, expected: bool) -> None:
    segment = Segment.parse(text, FIELDS)
    assert segment.matches(row) is expected
    assert segment.mask(pd.DataFrame([row])).tolist() == [expected]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenure < 90", r"unknown field 'tenure' \(did you mean 'tenure_days'\?\) at column 1"),
        ('Plan == "basic"', r"unknown field 'Plan' \(did you mean 'plan'\?\)"),
        ("zzzz == 1", r"unknown field 'zzzz' at column 1"),
        ("plan == ", r"invalid syntax at column 8"),
        ('plan == ("basic"', r"invalid syntax \('\(' was never closed\) at column 9"),
        ("tenure_days = 3", r"invalid syntax.*at column"),
        ('plan == "basic" and foo(1)', r"function calls are not allowed at column 21"),
        ('__import__("os").system("true")', r"function calls are not allowed at column 1"),
        ("plan.upper == 1", r"attribute access \(a.b\) is not allowed at column 1"),
        ("country[0] == 'F'", r"subscripts \(a\[b\]\) are not allowed"),
        ("(lambda: 1) == 1", r"lambda is not allowed"),
        ("tenure_days + 1 > 3", r"arithmetic is not allowed at column 1"),
        ("tenure_days > 2 * 45", r"arithmetic is not allowed at column 15"),
        ("-tenure_days < 3", r"a minus sign goes before a number only"),
        ("~vip", r"only 'not' and a minus sign"),
        ("vip & ticket_open", r"use 'and' / 'or' instead of '&' / '\|'"),
        ("[x for x in plan]", r"comprehensions are not allowed"),
        ('f"{plan}" == "basic"', r"f-strings are not allowed"),
        ("plan == None", r"None is not allowed"),
        ("plan is 'basic'", r"use == / != instead of 'is'"),
        ("plan == 3", r"cannot compare text field 'plan' and the number 3"),
        ('tenure_days == "90"', r"cannot compare number field 'tenure_days' and the text '90'"),
        ('plan < "b"', r"ordering \(<\) needs numbers, not text field 'plan'"),
        ("vip >= 1", r"ordering \(>=\) needs numbers, not bool field 'vip'"),
        ("vip == 1", r"cannot compare bool field 'vip' and the number 1"),
        ("vip == plan", r"cannot compare bool field 'vip' and text field 'plan'"),
        ("plan in (1, 2)", r"the values after 'in' must be text values for text field 'plan'"),
        ("plan in ()", r"an empty list of values matches nobody"),
        ('plan in {"a"}', r"sets are not allowed"),
        ('plan in "basic"', r"'in' needs a tuple of values"),
        ('"a" in plan', r"the left side of 'in' / 'not in' must be a field"),
        ("plan", r"text field 'plan' is not a condition"),
        ("1 == 1", r"this compares two constants"),
        ("True", r"a constant is not a condition"),
        ('plan == ("a", "b")', r"a list of values goes after 'in' or 'not in' only"),
        ("tenure_days if vip else 1", r"conditional expressions"),
        ("(x := 1)", r"assignments \(:=\) are not allowed"),
        ("x" * 2001, r"longer than 2000 characters"),
        ("vip\x00", r"NUL"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(SegmentError, match=message):
        Segment.parse(text, FIELDS)


def test_same_field_kinds_compare() -> None:
    assert Segment.parse("plan == country", FIELDS).matches({"plan": "FR", "country": "FR"})


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ('plan == "basic" and foo(1)', "foo"),
        ('country == "Zürich" and tenure < 3', "tenure"),
        ('   plan == "é" and  x.y == 1', "x.y"),
        ("tenure_days > 3 and (plan ==", "("),
        ("tenure_days > 3 and plan ==", None),
    ],
)
def test_caret_points_at_the_problem(text: str, token: str | None) -> None:
    with pytest.raises(SegmentError) as caught:
        Segment.parse(text, FIELDS)
    _, line, caret = str(caught.value).split("\n")
    column = int(str(caught.value).split(" at column ")[1].split(":")[0])
    assert line == "  " + text.rstrip()
    assert caret.index("^") - 2 == column - 1
    expected = text.index(token) if token else len(text)
    assert column - 1 == expected


@pytest.mark.parametrize("text", ["", "   ", "all", " ALL "])
def test_everyone(text: str) -> None:
    segment = Segment.parse(text, FIELDS)
    assert segment.is_everyone and segment.fields_used == () and str(segment) == "all"
    assert segment.matches({}) is True
    assert segment.mask(pd.DataFrame({"plan": ["a", None]})).tolist() == [True, True]


@pytest.mark.parametrize("missing", [{}, {"plan": None}, {"plan": float("nan")}, {"plan": 3}])
def test_missing_values_make_comparisons_false(missing: dict) -> None:
    for text in ('plan == "basic"', 'plan != "basic"', 'plan in ("a",)', 'plan not in ("a",)'):
        segment = Segment.parse(text, FIELDS)
        assert segment.matches(missing) is False, text
        assert Segment.parse(f"not ({text})", FIELDS).matches(missing) is True
    assert Segment.parse("ticket_open", FIELDS).matches({"ticket_open": None}) is False


def test_mask_of_a_table_without_the_column_is_false() -> None:
    frame = pd.DataFrame({"tenure_days": [1.0, 200.0]})
    assert Segment.parse('plan != "basic"', FIELDS).mask(frame).tolist() == [False, False]
    assert Segment.parse('not plan == "x"', FIELDS).mask(frame).tolist() == [True, True]


def test_mask_rejects_a_repeated_column() -> None:
    frame = pd.DataFrame([["a", "b"]], columns=["plan", "plan"])
    with pytest.raises(SegmentError, match="'plan' appears more than once"):
        Segment.parse('plan == "a"', FIELDS).mask(frame)


def test_parsed_segment_is_frozen_and_lists_fields_in_order() -> None:
    segment = Segment.parse('tenure_days < 90 and plan == "a" or tenure_days > 400', FIELDS)
    assert segment.fields_used == ("tenure_days", "plan")
    assert segment == Segment.parse('tenure_days < 90 and plan == "a" or tenure_days > 400', FIELDS)
    with pytest.raises(AttributeError):
        segment.text = "all"  # type: ignore[misc]


def test_a_segment_says_whether_it_reads_behaviour() -> None:
    assert not Segment.parse('plan == "basic" and vip', FIELDS).uses_behaviour
    assert Segment.parse('plan == "basic" and tenure_days < 90', FIELDS).uses_behaviour
    assert not Segment.everyone().uses_behaviour


def test_syntax_check_without_catalogue() -> None:
    assert check_segment_syntax('plan == "basic" and tenure < 3') == ("plan", "tenure")
    for text, message in [
        ("open(1)", "function calls"),
        ('x < "b"', "ordering"),
        ("x ==", "syntax"),
    ]:
        with pytest.raises(SegmentError, match=message):
            check_segment_syntax(text)


def test_catalogue_kinds() -> None:
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "plan": ["basic", None],
            "age": [30, 40],
            "vip": [True, False],
            "score": [1.5, None],
            "mixed": [1, "x"],
            "signup": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "spend": ["x", "y"],
        }
    )
    kinds = attribute_kinds(customers)
    assert kinds == {
        "plan": "text",
        "age": "number",
        "vip": "bool",
        "score": "number",
        "mixed": "text",
        "spend": "text",
    }
    catalogue = field_catalogue(customers)
    assert catalogue["spend"] == "number"  # the behavioural feature wins
    assert set(BEHAVIOUR_FEATURES) <= set(catalogue)
    assert attribute_kinds([{"plan": "a", "vip": True}, {"vip": None}]) == {
        "plan": "text",
        "vip": "bool",
    }
    assert infer_kind([None, float("nan")]) is None
    with pytest.raises(SegmentError, match="kind 'date'"):
        field_catalogue({"signup": "date"})


# -- matches and mask agree on random expressions over random rows ------------------------------

_numbers = st.sampled_from([-1, 0, 0.5, 1, 30, 90, 89.5])
_atoms = st.one_of(
    st.builds(
        lambda op, n: f"tenure_days {op} {n}",
        st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
        _numbers,
    ),
    st.builds(lambda op, n: f"{n} {op} tenure_days", st.sampled_from(["<", ">=", "!="]), _numbers),
    st.builds(
        lambda op, s: f'plan {op} "{s}"',
        st.sampled_from(["==", "!="]),
        st.sampled_from(["basic", "pro"]),
    ),
    st.builds(
        lambda neg, xs: f"country {'not in' if neg else 'in'} ({', '.join(repr(x) for x in xs)},)",
        st.booleans(),
        st.lists(st.sampled_from(["FR", "DE", "BE"]), min_size=1, max_size=2),
    ),
    st.builds(
        lambda neg, xs: f"tenure_days {'not in' if neg else 'in'} {xs}",
        st.booleans(),
        st.lists(_numbers, min_size=1, max_size=3).map(tuple),
    ),
    st.sampled_from(
        [
            "vip",
            "ticket_open",
            "vip == False",
            "consent_email == True",
            "email_open_rate > sms_open_rate",
            "plan == country",
        ]
    ),
)
_expressions = st.recursive(
    _atoms,
    lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
        st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
        inner.map(lambda a: f"not ({a})"),
    ),
    max_leaves=6,
)
_missing = st.sampled_from([None, float("nan")])
_rows = st.fixed_dictionaries(
    {},
    optional={
        "tenure_days": st.one_of(_numbers, _missing, st.just("ninety")),
        "plan": st.one_of(st.sampled_from(["basic", "pro", "FR"]), _missing, st.just(3)),
        "country": st.one_of(st.sampled_from(["FR", "DE", "BE"]), _missing),
        "vip": st.one_of(st.booleans(), _missing),
        "ticket_open": st.one_of(st.sampled_from([0.0, 1.0]), _missing),
        "consent_email": st.one_of(st.sampled_from([0.0, 1.0, True]), _missing),
        "email_open_rate": st.one_of(st.floats(0, 1), _missing),
        "sms_open_rate": st.one_of(st.floats(0, 1), _missing),
    },
)


@settings(max_examples=150, deadline=None)
@given(text=_expressions, rows=st.lists(_rows, min_size=1, max_size=12))
def test_matches_and_mask_agree(text: str, rows: list[dict]) -> None:
    segment = Segment.parse(text, FIELDS)
    frame = pd.DataFrame(rows)
    one_by_one = [segment.matches(row) for row in rows]
    assert segment.mask(frame).tolist() == one_by_one
    # the same rows, as the frame hands them back (NaN for absent keys), give the same answers
    assert [segment.matches(r) for r in frame.to_dict("records")] == one_by_one


def test_mask_agrees_on_typed_columns() -> None:
    frame = pd.DataFrame(
        {
            "tenure_days": pd.array([10, None, 120], dtype="Int64"),
            "vip": pd.array([True, None, False], dtype="boolean"),
            "plan": pd.array(["basic", None, "pro"], dtype="string"),
        }
    )
    segment = Segment.parse('tenure_days < 90 or vip or plan == "pro"', FIELDS)
    rows = [
        {k: (None if v is pd.NA else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]
    assert segment.mask(frame).tolist() == [segment.matches(r) for r in rows] == [True, False, True]


@settings(max_examples=150, deadline=None)
@given(text=_expressions, features=_rows, attributes=_rows)
def test_a_customer_matches_as_its_merged_fields(
    text: str, features: dict, attributes: dict
) -> None:
    # an attribute wins over a feature of the same name, as in the merged mapping
    segment = Segment.parse(text, FIELDS)
    merged = {**features, **attributes}
    assert segment.matches_customer(features, attributes) == segment.matches(merged)
