"""Tests of the explanations a marketer reads."""

from __future__ import annotations

from decisioning.actions import DO_NOTHING, Action
from decisioning.decision import ActionValue, BlockedAction
from decisioning.explanation import explain, local_time


def records(*rules: str) -> tuple[BlockedAction, ...]:
    return tuple(
        BlockedAction(f"email@{i}", rule, f"email: {rule}") for i, rule in enumerate(rules)
    )


def test_a_contact_is_explained_by_its_value_against_doing_nothing() -> None:
    text = explain(
        action=Action.from_key("email@today_evening"),
        objective_name="Premium upsell",
        expected_value=1.25,
        nothing_value=0.5,
    )
    assert text == (
        "Send an e-mail this evening for Premium upsell; expected net value +1.25 vs +0.50 for "
        "doing nothing."
    )


def test_a_contact_says_when_it_sends_on_the_customers_clock() -> None:
    ts = 1_764_342_000.0  # 2025-11-28 15:00 UTC
    assert local_time("America/New_York", ts) == "Fri 28 Nov 10:00 America/New_York"
    assert local_time("Europe/Paris", ts) == "Fri 28 Nov 16:00 Europe/Paris"
    text = explain(
        action=Action.from_key("email@weekend_morning"),
        objective_name="Premium upsell",
        expected_value=1.7,
        nothing_value=1.5,
        sends_at=local_time("America/New_York", ts + 86_400),
    )
    assert text == (
        "Send an e-mail on the weekend morning (Sat 29 Nov 10:00 America/New_York) for Premium "
        "upsell; expected net value +1.70 vs +1.50 for doing nothing."
    )
    # doing nothing sends nothing: no time to tell
    assert "(" not in explain(
        action=DO_NOTHING, objective_name=None, expected_value=0.0, nothing_value=0.0,
        sends_at="Sat 29 Nov 10:00 UTC",
    )  # fmt: skip


def test_doing_nothing_names_the_best_alternative_or_the_blocking_rules() -> None:
    best = explain(
        action=DO_NOTHING,
        objective_name=None,
        expected_value=0.2,
        nothing_value=0.2,
        alternatives=(ActionValue("sms@now", -0.4),),
    )
    assert (
        best == "Do nothing; no contact is expected to pay off (best: sms@now at -0.40 vs +0.20)."
    )
    blocked = records("consent", "one_voice", "one_voice", "contact_cap", "one_voice", "consent")
    text = explain(
        action=DO_NOTHING,
        objective_name="Churn",
        expected_value=0.0,
        nothing_value=0.0,
        blocked=blocked,
        n_actions=len(blocked) + 1,
    )
    assert text == (
        "Do nothing for Churn; every contact is blocked by the contact policy. Blocked: already "
        "contacted by another objective (3), no consent (2), frequency cap (1)."
    )


def nothing(blocked: object) -> str:
    """The explanation of doing nothing with ``blocked`` records."""
    return explain(
        action=DO_NOTHING,
        objective_name=None,
        expected_value=None,
        nothing_value=None,
        blocked=blocked,  # type: ignore[arg-type]
    )


def test_the_blocked_words_follow_the_records_shared_or_not() -> None:
    shared = records("consent", "consent", "quiet_hours")
    words = [nothing(b) for b in (shared, shared, list(shared), records("quiet_hours"))]
    said = "Do nothing. Blocked: no consent (2), quiet hours (1)."
    assert words[0] == words[1] == words[2] == said
    assert words[3] == "Do nothing. Blocked: quiet hours (1)."
    # a list may change between calls: its words are worked out again
    changing = [*shared]
    assert nothing(changing) == said
    changing.append(BlockedAction("sms@now", "quiet_hours", "sms: quiet hours"))
    assert nothing(changing).endswith("no consent (2), quiet hours (2).")
