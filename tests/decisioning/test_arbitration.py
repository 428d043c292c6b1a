"""Tests of one-voice arbitration between objectives, and of the arbitration window."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from decisioning.actions import DO_NOTHING, Action
from decisioning.arbitration import ArbitrationWindow, Candidate, arbitrate
from decisioning.errors import InvalidInput

EMAIL = Action.from_key("email@now")
PUSH = Action.from_key("push@today_evening")


def pick(*candidates: Candidate) -> str:
    return arbitrate(candidates).objective_id


def test_a_single_candidate_stands() -> None:
    only = Candidate("winback", 1, EMAIL, -0.2)
    assert arbitrate([only]) is only


def test_priority_beats_expected_value_among_worthwhile_contacts() -> None:
    assert pick(Candidate("a", 1, EMAIL, 5.0), Candidate("b", 2, PUSH, 0.1)) == "b"


def test_expected_value_breaks_priority_ties_then_the_objective_id() -> None:
    assert pick(Candidate("a", 1, EMAIL, 0.2), Candidate("b", 1, PUSH, 0.3)) == "b"
    assert pick(Candidate("b", 1, EMAIL, 0.3), Candidate("a", 1, PUSH, 0.3)) == "a"


def test_a_contact_must_be_worth_something_to_beat_doing_nothing() -> None:
    silent = Candidate("onboarding", 0, DO_NOTHING, 0.0)
    assert pick(Candidate("upsell", 9, EMAIL, 0.0), silent) == "onboarding"
    assert pick(Candidate("upsell", 9, EMAIL, -1.0), silent) == "onboarding"
    assert pick(Candidate("upsell", 9, EMAIL, None), silent) == "onboarding"
    assert pick(Candidate("upsell", 0, EMAIL, 1e-6), Candidate("z", 9, DO_NOTHING, 0.0)) == "upsell"


def test_a_worthwhile_contact_of_low_priority_beats_a_high_priority_harmful_one() -> None:
    harmful = Candidate("retention", 9, PUSH, -0.5)
    useful = Candidate("cross_sell", 1, EMAIL, 0.4)
    assert pick(harmful, useful) == "cross_sell"


def test_among_do_nothing_the_highest_priority_is_recorded() -> None:
    assert pick(Candidate("b", 1, DO_NOTHING, 0.0), Candidate("a", 3, DO_NOTHING, 0.0)) == "a"
    assert pick(Candidate("b", 1, DO_NOTHING, 0.0), Candidate("a", 1, DO_NOTHING, 0.0)) == "a"


def test_without_do_nothing_the_order_picks_among_unworthy_contacts() -> None:
    assert pick(Candidate("a", 1, EMAIL, -0.1), Candidate("b", 2, PUSH, -0.9)) == "b"


def test_bad_candidates_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least one"):
        arbitrate([])
    with pytest.raises(InvalidInput, match="more than once: a"):
        arbitrate([Candidate("a", 1, EMAIL, 1.0), Candidate("a", 1, PUSH, 2.0)])
    with pytest.raises(InvalidInput, match="NaN"):
        Candidate("a", 1, EMAIL, math.nan)
    with pytest.raises(InvalidInput, match="objective id"):
        Candidate("", 1, EMAIL, 1.0)


candidate_lists = st.lists(
    st.builds(
        Candidate,
        objective_id=st.text("abcdef", min_size=1, max_size=3),
        priority=st.integers(0, 3),
        action=st.sampled_from((DO_NOTHING, EMAIL, PUSH)),
        expected_value=st.one_of(st.none(), st.floats(-2, 2, allow_nan=False)),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda c: c.objective_id,
)


@given(candidate_lists)
def test_the_winner_does_not_depend_on_the_order_of_candidates(cands: list[Candidate]) -> None:
    winner = arbitrate(cands)
    assert arbitrate(list(reversed(cands))) is winner
    assert winner in cands
    worthwhile = [c for c in cands if c.is_contact and c.value > 0]
    if worthwhile:
        assert winner.is_contact and winner.value > 0
        assert winner.priority == max(c.priority for c in worthwhile)
    elif any(not c.is_contact for c in cands):
        assert not winner.is_contact


def test_arbitration_window() -> None:
    window = ArbitrationWindow()
    now = 1_700_000_000.0
    assert not window.recent_decision_blocks(None, now)
    assert window.recent_decision_blocks(now - 23 * 3600, now)
    assert not window.recent_decision_blocks(now - 24 * 3600, now)
    assert window.recent_decision_blocks(now + 60, now)  # clock skew: still held
    assert not ArbitrationWindow(hours=0).recent_decision_blocks(now, now)
    with pytest.raises(InvalidInput, match="-1"):
        ArbitrationWindow(hours=-1)
