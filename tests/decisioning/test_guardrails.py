"""Tests of the contact policy: each rule's reason, deferral, overrides, revalidation, invariants."""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from decisioning.actions import Action, ActionSpace
from decisioning.channels import DEFAULT_COSTS, OWNED_CHANNELS, Channel
from decisioning.customer_view import CustomerState
from decisioning.decision import Decision
from decisioning.errors import InvalidInput
from decisioning.guardrail_rules import Facts
from decisioning.guardrail_rules import budget as rule_budget
from decisioning.guardrails import (
    RULES,
    ContactPolicy,
    ContactPolicySettings,
    ScheduledDecision,
    parse_window,
)

H, D = 3600.0, 86400.0
PARIS = "Europe/Paris"
SPACE = ActionSpace.build()
OWNED = tuple(c.value for c in OWNED_CHANNELS)
CHANNELS = (*OWNED, "paid_social")


def local(text: str, tz: str = PARIS) -> float:
    """Epoch seconds of a wall-clock time in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


# Wednesday 12 June 2024, 10:00 in Paris: outside quiet hours.
NOW = local("2024-06-12T10:00")


def customer(consents: tuple[str, ...] = OWNED, tz: str = PARIS) -> CustomerState:
    return CustomerState(
        "c1", signup_at=NOW - 400 * D, timezone=tz, consents=dict.fromkeys(consents, True)
    )


def loose(**overrides: object) -> ContactPolicy:
    """A policy with every rule but those in ``overrides`` out of the way."""
    base = {
        "caps": {},
        "channel_caps": {},
        "quiet_hours": None,
        "purchase_cooldown_hours": 0,
        "category_cooldown_days": 0,
        "waterfall_hours": None,
        "complaint_days": 0,
    }
    return ContactPolicy(ContactPolicySettings.model_validate({**base, **overrides}))


def why(policy: ContactPolicy, state: CustomerState, key: str, now: float = NOW, **kw: object):
    return policy.evaluate(state, SPACE, now, **kw).reason(key)  # type: ignore[arg-type]


def send_time(policy: ContactPolicy, state: CustomerState, key: str, now: float = NOW) -> float:
    result = policy.evaluate(state, SPACE, now)
    return float(result.send_at[SPACE.index(key)])


# -- each rule -------------------------------------------------------------------------------


def test_everything_allowed_for_a_fresh_consenting_customer_except_the_paid_waterfall() -> None:
    result = ContactPolicy().evaluate(customer(), SPACE, NOW)
    assert result.eligible.dtype == bool and result.eligible.shape == (31,)
    blocked = {b.action: b.rule for b in result.blocked}
    assert set(blocked.values()) == {"waterfall"}
    assert all(key.startswith("paid_social@") for key in blocked)
    assert result.send_at[0] == NOW


def test_open_ticket_blocks_every_contact_but_never_doing_nothing() -> None:
    state = customer()
    state.apply(ts=NOW - H, type="support_ticket_opened")
    result = ContactPolicy().evaluate(state, SPACE, NOW)
    assert result.eligible.tolist() == [True] + [False] * 30
    assert {b.rule for b in result.blocked} == {"support_ticket"}
    assert result.reason("sms@now").reason == (
        "sms: support ticket open: no marketing until it is closed"
    )
    state.apply(ts=NOW - 1, type="support_ticket_closed")
    assert ContactPolicy().evaluate(state, SPACE, NOW).eligible[SPACE.index("sms@now")]


def test_one_policy_serves_action_spaces_of_different_slots() -> None:
    # a channel blocked as a whole lists that space's own actions, whatever was seen before
    policy, state = ContactPolicy(), customer(consents=("push",))
    for slots in (["now", "today_evening"], ["now", "today_noon", "tomorrow_morning"]):
        space = ActionSpace.build(["email", "push"], slots)
        result = policy.evaluate(state, space, NOW)
        email = [key for key in space.keys if key.startswith("email@")]
        assert [b.action for b in result.blocked if b.rule == "consent"] == email


def test_consent_and_unsubscribe() -> None:
    state = customer(consents=("email", "push"))
    hit = why(ContactPolicy(), state, "sms@now")
    assert (hit.rule, hit.reason) == (
        "consent",
        "sms: no consent for sms messages (never given, or unsubscribed)",
    )
    state.apply(ts=NOW - 60, type="unsubscribe", channel="email")
    assert why(ContactPolicy(), state, "email@today_evening").rule == "consent"
    assert why(ContactPolicy(), state, "push@now") is None
    state.apply(ts=NOW - 30, type="unsubscribe")  # no channel: from everything
    assert why(ContactPolicy(), state, "push@now").rule == "consent"


def test_quiet_hours_defer_to_their_end_in_the_customer_time_zone() -> None:
    late = local("2024-06-12T22:30")
    policy = ContactPolicy()
    assert why(policy, customer(), "email@now", late) is None
    assert send_time(policy, customer(), "email@now", late) == local("2024-06-13T08:00")
    # the same moment is 16:30 in New York: not quiet there
    ny = customer(tz="America/New_York")
    assert send_time(policy, ny, "email@now", late) == late


def test_deferral_keeps_the_local_hour_across_a_daylight_saving_change() -> None:
    late = local("2024-03-30T22:30")  # clocks go forward in Paris that night
    assert send_time(ContactPolicy(), customer(), "sms@now", late) == local("2024-03-31T08:00")
    assert local("2024-03-31T08:00") - late == 8.5 * H


def test_deferral_beyond_the_limit_blocks() -> None:
    policy = loose(quiet_hours=("21:00", "08:00"), max_defer_hours=5)
    hit = why(policy, customer(), "push@now", local("2024-06-12T22:30"))
    assert hit.rule == "quiet_hours"
    assert hit.reason == (
        "push: quiet hours (21:00-08:00 local): the next allowed time is 10 hours away, "
        "more than the 5-hour limit"
    )
    assert why(policy, customer(), "push@now", local("2024-06-13T07:00")) is None


def test_block_mode_blocks_instead_of_deferring() -> None:
    policy = loose(quiet_hours=("21:00", "08:00"), quiet_hours_mode="block")
    late = local("2024-06-12T22:30")
    hit = why(policy, customer(), "email@now", late)
    assert (hit.rule, hit.reason) == (
        "quiet_hours",
        "email: send time falls in quiet hours (21:00-08:00 local)",
    )
    assert why(policy, customer(), "email@tomorrow_morning", late) is None


def test_quiet_hours_also_move_scheduled_slots() -> None:
    policy = loose(quiet_hours=("18:00", "10:00"), max_defer_hours=16)
    assert send_time(policy, customer(), "email@today_evening") == local("2024-06-13T10:00")
    assert send_time(policy, customer(), "email@tomorrow_morning") == local("2024-06-13T10:00")
    assert send_time(policy, customer(), "email@today_noon") == local("2024-06-12T12:00")
    hit = why(loose(quiet_hours=("18:00", "10:00")), customer(), "email@today_evening")
    assert hit.rule == "quiet_hours" and "15 hours away" in hit.reason


def test_frequency_cap_reason_names_the_channel_and_the_window() -> None:
    state = customer()
    for days in (1, 2, 3):
        state.apply_contact(ts=NOW - days * D - H, channel="push")
    hit = why(ContactPolicy(), state, "push@now")
    assert (hit.rule, hit.reason) == (
        "channel_cap",
        "push: frequency cap reached (3 push messages in the last 7 days)",
    )
    # the weekly cap across channels (3) is reached too, for every other channel
    assert why(ContactPolicy(), state, "email@now").reason == (
        "email: contact cap reached (3 messages on any channel in the last 7 days)"
    )


def test_reasons_are_shared_across_customers_and_send_times() -> None:
    policy = ContactPolicy()
    one, two = customer(), customer()
    for state in (one, two):
        state.apply_contact(ts=NOW - 2 * H, channel="email")
    first, second = (policy.evaluate(s, SPACE, NOW) for s in (one, two))
    assert first.blocked == second.blocked
    # the same records, and the same send times, read-only: nothing is worded twice
    assert all(a is b for a, b in zip(first.blocked, second.blocked, strict=True))
    assert first.send_at is second.send_at and not first.send_at.flags.writeable
    # a figure that differs is worded anew
    two.apply_contact(ts=NOW - 3 * H, channel="sms")
    third = policy.evaluate(two, SPACE, NOW)
    assert third.reason("push@now").reason == (
        "push: contact cap reached (2 messages on any channel in the last 24 hours)"
    )


def test_reasons_keep_at_most_their_limit() -> None:
    from decisioning.guardrail_reasons import Reasons

    reasons = Reasons(limit=2)
    kept = reasons("consent", "sms")
    assert kept == ("consent", "no consent for sms messages (never given, or unsubscribed)")
    assert reasons("consent", "sms") is kept
    assert reasons("channel_off", "push") == (
        "channel_cap",
        "push is switched off by the contact policy (cap 0)",
    )
    reasons("consent", "email")  # over the limit: the kept reasons are let go, not grown
    assert reasons("consent", "sms") == kept and reasons("consent", "sms") is not kept


def test_daily_cap_is_checked_at_the_send_time() -> None:
    state = customer()
    state.apply_contact(ts=NOW - 10 * H, channel="email")
    policy = loose(caps={"24h": 1})
    assert why(policy, state, "sms@now").reason == (
        "sms: contact cap reached (1 message on any channel in the last 24 hours)"
    )
    assert why(policy, state, "sms@tomorrow_morning") is None  # 33 hours after the email


def test_pending_sends_count_in_the_windows_around_them() -> None:
    policy = loose(caps={"24h": 1})
    tomorrow = local("2024-06-13T19:00")
    result = policy.evaluate(customer(), SPACE, NOW, pending=[(tomorrow, "sms")])
    assert result.eligible[SPACE.index("email@now")]  # 33 hours before it
    assert result.eligible[SPACE.index("email@today_evening")]  # exactly 24 hours before
    assert result.eligible[SPACE.index("email@weekend_morning")]  # 39 hours after
    for slot in ("tomorrow_morning", "tomorrow_evening"):
        assert result.reason(f"email@{slot}").rule == "contact_cap"


def test_a_pending_send_without_channel_counts_against_every_channel() -> None:
    policy = loose(channel_caps={"email": {"7d": 1}, "sms": {"7d": 1}})
    later = NOW + 2 * D
    known = policy.evaluate(customer(), SPACE, NOW, pending=[(later, "sms")])
    assert known.eligible[SPACE.index("email@now")]
    assert known.reason("sms@now").rule == "channel_cap"
    bare = policy.evaluate(customer(), SPACE, NOW, pending=[later])
    assert bare.reason("email@now").rule == "channel_cap"
    assert bare.reason("sms@now").rule == "channel_cap"
    with pytest.raises(InvalidInput, match="fax"):
        policy.evaluate(customer(), SPACE, NOW, pending=[(later, "fax")])


def test_a_zero_cap_switches_a_channel_off() -> None:
    hit = why(loose(channel_caps={"sms": {"30d": 0}}), customer(), "sms@now")
    assert hit.reason == "sms: sms is switched off by the contact policy (cap 0)"


def test_purchase_cooldown_counts_from_the_purchase_to_the_send_time() -> None:
    state = customer()
    state.apply(ts=NOW - 5 * H, type="purchase", value=30.0)
    policy = loose(purchase_cooldown_hours=24)
    hit = why(policy, state, "email@now")
    assert hit.reason == (
        "email: purchase cooldown (a purchase 5 hours before the send time; "
        "no marketing for 24 hours after a purchase)"
    )
    assert why(policy, state, "email@today_evening").rule == "purchase_cooldown"  # 14 h
    assert why(policy, state, "email@tomorrow_morning") is None  # 28 hours after


def test_category_cooldown_only_for_the_promoted_category() -> None:
    state = customer()
    state.apply(ts=NOW - 2 * D, type="purchase", value=80.0, category="shoes")
    policy = loose(category_cooldown_days=7)
    hit = why(policy, state, "email@now", promoted_category="shoes")
    assert hit.reason == (
        "email: category cooldown ('shoes' was bought 2 days before the send time; "
        "no promoting a category bought within 7 days)"
    )
    assert why(policy, state, "email@now", promoted_category="bags") is None
    assert why(policy, state, "email@now") is None


def test_waterfall_waits_for_an_unanswered_owned_message() -> None:
    policy = loose(waterfall_hours=48)
    state = customer()
    assert why(policy, state, "paid_social@now").reason == (
        "paid_social: owned channels first: no email, sms, push or whatsapp message sent yet"
    )
    state.apply_contact(ts=NOW - 20 * H, channel="email")
    assert why(policy, state, "paid_social@now").reason == (
        "paid_social: owned channels first: the last owned message is 20 hours old at the send "
        "time; paid media waits 48 hours for a response"
    )
    # tomorrow evening the email is 53 hours old and still unanswered
    assert why(policy, state, "paid_social@tomorrow_evening") is None
    state.apply(ts=NOW - 10 * H, type="open", channel="email")
    assert why(policy, state, "paid_social@tomorrow_evening").reason == (
        "paid_social: owned channels first: the customer answered the last owned message"
    )


def test_a_scheduled_owned_message_restarts_the_waterfall() -> None:
    policy = loose(waterfall_hours=48)
    state = customer()
    state.apply_contact(ts=NOW - 60 * H, channel="email")
    assert why(policy, state, "paid_social@now") is None
    hit = why(policy, state, "paid_social@tomorrow_evening", pending=[(NOW + H, "push")])
    assert hit.rule == "waterfall"
    assert why(policy, state, "paid_social@now", pending=[(NOW + H, "push")]) is None


def test_complaint_keeps_paid_media_away_for_30_days() -> None:
    policy = loose(complaint_days=30)
    state = customer()
    state.apply(ts=NOW - 10 * D, type="complaint", channel="email")
    assert why(policy, state, "paid_social@now").reason == (
        "paid_social: the customer complained 10 days before the send time; "
        "no paid media for 30 days after a complaint"
    )
    assert why(policy, state, "email@now") is None
    assert why(policy, state, "paid_social@now", NOW + 21 * D) is None


def test_budget_blocks_actions_that_cost_more_than_what_is_left() -> None:
    policy = loose()
    state = customer()
    result = policy.evaluate(state, SPACE, NOW, remaining_budget=0.2)
    assert result.reason("paid_social@now").reason == (
        "paid_social: budget exhausted (this message costs 0.5, 0.2 left for the period)"
    )
    assert result.eligible[SPACE.index("sms@now")]  # 0.05
    assert policy.evaluate(state, SPACE, NOW).eligible.all()  # no budget given: no limit
    spent = policy.evaluate(state, SPACE, NOW, remaining_budget=0.0)
    assert spent.eligible[SPACE.index("push@now")]  # push costs nothing
    assert spent.reason("email@now").rule == "budget"
    costs = np.full(len(SPACE), 0.3)
    costs[0] = 0.0
    custom = policy.evaluate(state, SPACE, NOW, costs=costs, remaining_budget=0.25)
    assert custom.eligible.tolist() == [True] + [False] * 30
    with pytest.raises(InvalidInput, match="shape"):
        policy.evaluate(state, SPACE, NOW, costs=np.zeros(3))


def test_blocked_actions_report_the_first_rule_in_order() -> None:
    state = customer(consents=())
    state.apply(ts=NOW - H, type="purchase", value=5.0)
    result = ContactPolicy().evaluate(state, SPACE, NOW)
    assert result.reason("sms@now").rule == "consent"
    assert result.reason("paid_social@now").rule == "purchase_cooldown"
    assert [b.action for b in result.blocked] == list(SPACE.keys[1:])
    assert RULES.index("consent") < RULES.index("purchase_cooldown")


def test_one_voice_blocks_what_ticket_and_consent_leave_before_the_send_time_rules() -> None:
    state = customer(consents=("email",))
    state.apply(ts=NOW - H, type="purchase", value=5.0)  # a purchase cooldown, hidden by it
    result = ContactPolicy().evaluate(state, SPACE, NOW, one_voice=True)
    assert result.eligible.tolist() == [True] + [False] * (len(SPACE) - 1)
    assert result.reason("sms@now").rule == "consent"
    held = result.reason("email@now")
    assert held is not None and held.rule == "one_voice"
    assert held.reason == "email: already contacted within the arbitration window"
    assert result.reason("paid_social@tomorrow_morning").rule == "one_voice"  # type: ignore[union-attr]
    assert [b.action for b in result.blocked] == list(SPACE.keys[1:])
    assert RULES.index("consent") < RULES.index("one_voice") < RULES.index("quiet_hours")
    # the open ticket still comes first, and the send times are those of the schedule
    state.apply(ts=NOW - 60, type="support_ticket_opened")
    ticket = ContactPolicy().evaluate(state, SPACE, NOW, one_voice=True)
    assert {b.rule for b in ticket.blocked} == {"support_ticket"}
    free = ContactPolicy().evaluate(state, SPACE, NOW)
    assert ticket.send_at.tolist() == free.send_at.tolist()


@pytest.mark.parametrize("one_voice", [False, True])
def test_a_pending_send_on_an_unknown_channel_is_refused(one_voice: bool) -> None:
    policy = ContactPolicy()
    with pytest.raises(InvalidInput, match="pending send on unknown channel 'fax'"):
        policy.evaluate(customer(), SPACE, NOW, pending=[(NOW + H, "fax")], one_voice=one_voice)
    # a scheduled do-nothing is no send
    policy.evaluate(customer(), SPACE, NOW, pending=[(NOW + H, "none")], one_voice=one_voice)


def test_customers_closed_alike_share_one_read_only_result() -> None:
    policy = ContactPolicy()
    first = policy.evaluate(customer(consents=("email",)), SPACE, NOW, one_voice=True)
    second = policy.evaluate(customer(consents=("email",)), SPACE, NOW + 60, one_voice=True)
    other = policy.evaluate(customer(consents=("push",)), SPACE, NOW, one_voice=True)
    assert first.blocked is second.blocked and first.eligible is second.eligible
    assert other.blocked is not first.blocked
    assert other.reason("email@now").rule == "consent"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="read-only"):
        first.eligible[1] = True


def test_a_smaller_action_space_is_evaluated_on_its_own_actions() -> None:
    space = ActionSpace.build(channels=["email"], slots=["now", "tomorrow_morning"])
    result = ContactPolicy().evaluate(customer(), space, NOW)
    assert result.eligible.tolist() == [True, True, True]
    assert result.send_at[2] == local("2024-06-13T09:00")


# -- settings and overrides --------------------------------------------------------------------


def test_overrides_merge_key_by_key_and_leave_the_original_alone() -> None:
    base = ContactPolicySettings()
    merged = base.merged(
        {
            "channel_caps": {"sms": {"7d": 2, "24h": 1}, "push": None},
            "quiet_hours": ["22:00", "07:00"],
        }
    )
    assert merged.channel_caps[Channel.SMS] == {"7d": 2, "24h": 1}
    assert Channel.PUSH not in merged.channel_caps
    assert merged.channel_caps[Channel.EMAIL] == {"7d": 2}
    assert merged.quiet_hours == (time(22), time(7))
    assert base.channel_caps[Channel.SMS] == {"7d": 1} and Channel.PUSH in base.channel_caps
    assert base.merged({"waterfall_hours": None}).waterfall_hours is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"quiet_hour": ["22:00", "07:00"]}, "unknown contact policy setting 'quiet_hour'"),
        ({"max_defer_hours": -1}, "'max_defer_hours'"),
        ({"caps": {"3w": 2}}, "'caps'.*'3w'"),
        ({"caps": {"45d": 2}}, "between 1h and 30d"),
        ({"channel_caps": {"fax": {"7d": 1}}}, "'channel_caps.fax"),
        ({"channel_caps": {"sms": {"7d": -1}}}, "0 or more"),
        ({"quiet_hours_mode": "snooze"}, "'quiet_hours_mode'"),
        ({"quiet_hours": ["08:00", "08:00"]}, "same time"),
        ({"category_cooldown_days": 45}, "'category_cooldown_days'"),
    ],
)
def test_bad_overrides_name_the_setting(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ContactPolicySettings().merged(overrides)


def test_parse_window() -> None:
    assert parse_window("24h") == (D, "24 hours")
    assert parse_window("1d") == (D, "1 day")
    assert parse_window("30d") == (30 * D, "30 days")
    for bad in ("0h", "7 days", "31d", "x"):
        with pytest.raises(ValueError, match=repr(bad)):
            parse_window(bad)


# -- revalidation ------------------------------------------------------------------------------


def scheduled(key: str = "email@today_evening") -> ScheduledDecision:
    return ScheduledDecision(key, NOW, local("2024-06-12T19:00"))


def confirm(state: CustomerState, plan: ScheduledDecision | None = None, **kw: object):
    plan = plan or scheduled()
    return ContactPolicy().revalidate(state, plan, plan.send_at, **kw)  # type: ignore[arg-type]


def test_revalidate_goes_when_nothing_changed() -> None:
    assert confirm(customer()) == (True, None)
    assert confirm(customer(), ScheduledDecision("none", NOW, NOW)) == (True, None)


@pytest.mark.parametrize(
    ("kind", "channel", "reason"),
    [
        ("purchase", None, "the customer made a purchase after the decision"),
        ("complaint", "sms", "the customer complained after the decision"),
        ("support_ticket_opened", None, "a support ticket is open"),
        ("open", "push", "the customer opened a push message after the decision"),
        ("click", "sms", "the customer clicked a sms message after the decision"),
        ("unsubscribe", "email", "the customer no longer consents to email messages"),
    ],
)
def test_revalidate_cancels_after_what_happened_since(
    kind: str, channel: str | None, reason: str
) -> None:
    state = customer()
    state.apply(ts=NOW + H, type=kind, channel=channel, value=1.0)
    assert confirm(state) == (False, reason)


def test_revalidate_ignores_what_happened_before_and_reactions_on_the_same_channel() -> None:
    state = customer()
    state.apply(ts=NOW - 2 * H, type="open", channel="push")
    state.apply(ts=NOW + H, type="open", channel="email")
    assert confirm(state) == (True, None)


def test_revalidate_cancels_after_a_ticket_opened_and_closed_since() -> None:
    state = customer()
    state.apply(ts=NOW + H, type="support_ticket_opened")
    state.apply(ts=NOW + 2 * H, type="support_ticket_closed")
    assert confirm(state) == (False, "a support ticket was opened or closed after the decision")


def test_revalidate_cancels_when_a_guardrail_now_blocks() -> None:
    state = customer()
    state.apply_contact(ts=NOW + 2 * H, channel="push")  # sent by another objective meanwhile
    go, reason = confirm(state)
    assert not go
    assert reason == "email: contact cap reached (1 message on any channel in the last 24 hours)"
    go, reason = confirm(customer(), pending=[(local("2024-06-12T20:00"), "sms")])
    assert not go and "contact cap" in reason
    go, reason = confirm(customer(), remaining_budget=0.0)
    assert not go and "budget exhausted" in reason
    assert confirm(customer(), remaining_budget=0.0, cost=0.0) == (True, None)


def test_revalidate_does_not_defer_again_into_quiet_hours() -> None:
    late = ScheduledDecision("email@now", NOW, local("2024-06-12T23:00"))
    assert confirm(customer(), late) == (
        False,
        "email: send time falls in quiet hours (21:00-08:00 local)",
    )


def test_scheduled_decision_checks_its_action() -> None:
    assert scheduled().channel == "email"
    decided = datetime.fromtimestamp(NOW, UTC)
    decision = Decision(
        decision_id="d1",
        customer_id="c1",
        decided_at=decided,
        objective_id="winback",
        objective_version=1,
        action=Action.from_key("sms@tomorrow_morning"),
        send_at=decided + timedelta(hours=23),
        propensity=0.5,
        model_version="m1",
        actions=SPACE.keys,
        distribution=(0.5,) * 2,
        eligible=(True,) * 2,
    )
    assert ScheduledDecision.from_decision(decision) == ScheduledDecision(
        "sms@tomorrow_morning", NOW, NOW + 23 * H
    )
    with pytest.raises(InvalidInput, match="fax@now"):
        ScheduledDecision("fax@now", NOW, NOW)


# -- properties: no sequence of events lets a blocked action through ---------------------------

TIMEZONES = ("UTC", PARIS, "America/New_York", "Asia/Kolkata")
STARTS = (local("2024-03-28T00:00", "UTC"), local("2024-10-24T00:00", "UTC"), NOW)
HORIZON = 6 * D
REACTION = st.tuples(st.sampled_from(("open", "click")), st.sampled_from(CHANNELS))
EVENT = st.one_of(
    REACTION,
    REACTION,  # reactions are the common case
    st.tuples(st.sampled_from(("unsubscribe", "subscribe")), st.sampled_from((*OWNED, None))),
    st.tuples(
        st.sampled_from(
            ("purchase", "complaint", "support_ticket_opened", "support_ticket_closed")
        ),
        st.none(),
    ),
)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, object]:
    minute = st.integers(0, int(HORIZON // 60))
    return {
        "tz": draw(st.sampled_from(TIMEZONES)),
        "start": draw(st.sampled_from(STARTS)),
        "consents": tuple(c for c in OWNED if draw(st.sampled_from((True, True, True, False)))),
        "history": draw(
            st.lists(st.tuples(st.integers(1, 7 * 24 * 60), st.sampled_from(CHANNELS)), max_size=3)
        ),
        "events": draw(
            st.lists(st.tuples(minute, EVENT, st.sampled_from(("shoes", "bags"))), max_size=30)
        ),
        "decisions": draw(st.lists(minute, min_size=4, max_size=30)),
        "budget": draw(st.one_of(st.none(), st.floats(0.0, 2.0))),
        "category": draw(st.sampled_from((None, "shoes"))),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def in_quiet(at: float, tz: str, start: time, end: time) -> bool:
    clock = datetime.fromtimestamp(at, ZoneInfo(tz)).time()
    return start <= clock < end if start < end else (clock >= start or clock < end)


def busiest(times: list[float], at: float, window: float) -> int:
    """Most contacts in any window ``(t - window, t]`` holding ``at`` (t among at and later)."""
    ends = [at] + [t for t in times if at < t < at + window]
    return max(bisect_right(times, t) - bisect_right(times, t - window) for t in ends)


def check_caps(
    policy: ContactPolicy, sent: list[tuple[float, str]], others: list[tuple[float, str]]
) -> None:
    everything = sorted(t for t, _ in sent + others)
    s = policy.settings
    for at, channel in sent:
        for window, cap in s.caps.items():
            assert busiest(everything, at, parse_window(window)[0]) <= cap
        for window, cap in s.channel_caps.get(Channel(channel), {}).items():
            mine = sorted(t for t, c in sent + others if c == channel)
            assert busiest(mine, at, parse_window(window)[0]) <= cap


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_no_sequence_of_events_lets_a_blocked_action_through(world: dict) -> None:
    policy = ContactPolicy()
    rng = random.Random(world["seed"])
    tz, start, category, budget = world["tz"], world["start"], world["category"], world["budget"]
    state = CustomerState(
        "c", signup_at=start - 400 * D, timezone=tz, consents=dict.fromkeys(world["consents"], True)
    )
    history = sorted((start - m * 60.0, ch) for m, ch in world["history"])
    for at, ch in history:
        state.apply_contact(ts=at, channel=ch)
    events = sorted(
        ((start + m * 60.0, kind, ch, cat) for m, (kind, ch), cat in world["events"]),
        key=lambda e: e[0],
    )
    # timeline: (time, order, ...): events before sends before decisions at the same time
    queue: list[tuple] = [(at, 0, i) for i, (at, *_rest) in enumerate(events)]
    queue += [(start + m * 60.0, 2, i) for i, m in enumerate(world["decisions"])]
    heapq.heapify(queue)
    scheduled: dict[
        int, tuple[float, str, float, float]
    ] = {}  # id -> (send_at, key, decided, cost)
    sent: list[tuple[float, str]] = []
    spent, next_id = 0.0, 0

    def pending(skip: int = -1) -> list[tuple[float, str] | float]:
        out: list[tuple[float, str] | float] = []
        for i, (at, key, _, _) in scheduled.items():
            if i != skip:
                out.append(
                    at if i % 3 == 0 else (at, key.partition("@")[0])
                )  # some without channel
        return out

    def left(skip: int = -1) -> float | None:
        if budget is None:
            return None
        return budget - spent - sum(c for i, (*_, c) in scheduled.items() if i != skip)

    while queue:
        at, order, ref = heapq.heappop(queue)
        if order == 0:
            _, kind, ch, cat = events[ref]
            state.apply(ts=at, type=kind, channel=ch, value=10.0, category=cat)
        elif order == 2:
            result = policy.evaluate(
                state,
                SPACE,
                at,
                pending=pending(),
                remaining_budget=left(),
                promoted_category=category,
            )
            assert result.eligible[0]
            choices = [i for i in range(1, len(SPACE)) if result.eligible[i]]
            if choices:
                i = rng.choice(choices)
                when = float(result.send_at[i])
                assert when >= at
                cost = DEFAULT_COSTS[SPACE[i].channel]
                scheduled[next_id] = (when, SPACE[i].key, at, cost)
                heapq.heappush(queue, (when, 1, next_id))
                next_id += 1
        else:
            when, key, decided, cost = scheduled[ref]
            plan = ScheduledDecision(key, decided, when)
            go, _ = policy.revalidate(
                state,
                plan,
                at,
                cost=cost,
                pending=pending(ref),
                remaining_budget=left(ref),
                promoted_category=category,
            )
            del scheduled[ref]
            event("confirmed" if go else "cancelled at send time")
            if go:
                state.apply_contact(ts=at, channel=plan.channel, cost=cost)
                sent.append((at, plan.channel))
                spent += cost

    event(f"sends: {min(len(sent), 5)}{'+' if len(sent) >= 5 else ''}")
    if any(ch == "paid_social" for _, ch in sent):
        event("paid media sent")
    # -- invariants, from the raw event log (not from the state the policy read) -------------
    check_caps(policy, sent, history)
    assert budget is None or spent <= budget + 1e-9
    owned_sends = sorted([t for t, c in history + sent if c in OWNED])
    for at, ch in sent:
        before = [e for e in events if e[0] <= at]
        assert not in_quiet(at, tz, time(21), time(8))
        tickets = 0
        consent = dict.fromkeys(OWNED, False) | dict.fromkeys(world["consents"], True)
        for _, kind, c, _ in before:
            if kind == "support_ticket_opened":
                tickets += 1
            elif kind == "support_ticket_closed":
                tickets = max(0, tickets - 1)
            elif kind == "unsubscribe":
                for name in [c] if c else OWNED:  # no channel: from everything
                    consent[name] = False
            elif kind == "subscribe" and c:
                consent[c] = True
        assert tickets == 0
        assert ch not in OWNED or consent[ch]
        assert not any(k == "purchase" and at - 24 * H < t <= at for t, k, _, _ in events)
        if category:
            assert not any(
                k == "purchase" and cat == category and at - 7 * D < t <= at
                for t, k, _, cat in events
            )
        if ch == "paid_social":
            assert not any(k == "complaint" and at - 30 * D < t <= at for t, k, _, _ in events)
            earlier = [t for t in owned_sends if t <= at]
            assert earlier, "paid media before any owned-channel message"
            last = earlier[-1]
            assert at - last >= 48 * H
            assert not any(
                k in ("open", "click") and c in OWNED and last <= t <= at for t, k, c, _ in events
            )


@st.composite
def contact_policies(draw: st.DrawFn) -> ContactPolicySettings:
    window = st.sampled_from(("6h", "24h", "3d", "7d"))
    caps = draw(st.dictionaries(window, st.integers(0, 3), max_size=3))
    channel_caps = draw(
        st.dictionaries(
            st.sampled_from(CHANNELS),
            st.dictionaries(window, st.integers(0, 3), max_size=2),
            max_size=5,
        )
    )
    start, end = draw(st.lists(st.integers(0, 23), min_size=2, max_size=2, unique=True))
    return ContactPolicySettings().merged(
        {
            "caps": caps,
            "channel_caps": channel_caps,
            "quiet_hours": (time(start), time(end)),
            "quiet_hours_mode": draw(st.sampled_from(("defer", "block"))),
            "max_defer_hours": draw(st.sampled_from((2.0, 14.0, 24.0))),
            "waterfall_hours": None,
        }
    )


@settings(max_examples=150, deadline=None)
@given(
    contact_policies(),
    st.sampled_from(TIMEZONES),
    st.lists(
        st.tuples(
            st.integers(1, 20 * 60),
            st.integers(0, 2**16),
            st.sampled_from(("apply", "pair", "bare")),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_caps_and_quiet_hours_hold_with_future_and_scheduled_sends(
    custom: ContactPolicySettings, tz: str, steps: list[tuple[int, int, str]]
) -> None:
    """Sends land in the state before their time or stay pending (with or without channel)."""
    policy = ContactPolicy(custom)
    state = CustomerState("c", signup_at=0.0, timezone=tz, consents=dict.fromkeys(OWNED, True))
    now = NOW
    sent: list[tuple[float, str]] = []
    waiting: list[tuple[float, str]] = []
    bare: set[int] = set()
    start, end = custom.quiet_hours
    for gap, pick, mode in steps:
        now += gap * 60.0
        pending = [at if i in bare else (at, ch) for i, (at, ch) in enumerate(waiting)]
        result = policy.evaluate(state, SPACE, now, pending=pending)
        assert result.eligible[0]
        choices = np.flatnonzero(result.eligible[1:]) + 1
        if not len(choices):
            continue
        i = int(choices[pick % len(choices)])
        at, ch = float(result.send_at[i]), SPACE[i].channel.value
        assert at >= now and not in_quiet(at, tz, start, end)
        # with nothing new, the confirm step agrees with the decision
        plan = ScheduledDecision(SPACE[i].key, now, at)
        assert policy.revalidate(state, plan, at, pending=pending) == (True, None)
        if mode == "apply":
            state.apply_contact(ts=at, channel=ch)
            sent.append((at, ch))
        else:
            if mode == "bare":
                bare.add(len(waiting))
            waiting.append((at, ch))
    check_caps(policy, sent + waiting, [])


#: minutes before now, often close to where a rule stops blocking (a day, two, a week, 30 days)
MINUTES_AGO = st.one_of(
    st.integers(0, 40 * 24 * 60),
    *(st.integers(d * 24 * 60 - 60, d * 24 * 60 + 60) for d in (1, 2, 7, 30)),
)


@settings(max_examples=300, deadline=None)
@given(
    contact_policies(),
    st.sampled_from(TIMEZONES),
    st.lists(st.tuples(MINUTES_AGO, st.sampled_from(CHANNELS)), max_size=12),
    st.lists(
        st.tuples(
            MINUTES_AGO,
            st.sampled_from(("purchase", "purchase", "complaint", "complaint", "open", "click")),
            st.sampled_from(CHANNELS),
            st.sampled_from(("shoes", "bags")),
        ),
        max_size=4,
    ),
    st.lists(st.tuples(st.integers(-60, 3 * 24 * 60), st.sampled_from(CHANNELS)), max_size=3),
    st.one_of(st.none(), st.floats(0.0, 2.0)),
    st.sampled_from((None, 24.0, 48.0)),
)
def test_the_rules_left_out_at_a_send_time_are_those_that_cannot_block_it(
    custom: ContactPolicySettings,
    tz: str,
    history: list[tuple[int, str]],
    events: list[tuple[int, str, str, str]],
    waiting: list[tuple[int, str]],
    budget: float | None,
    waterfall_hours: float | None,
) -> None:
    """Every action's verdict is that of every rule asked at its send time, in order."""
    policy = ContactPolicy(custom.merged({"waterfall_hours": waterfall_hours}))
    state = CustomerState("c", signup_at=0.0, timezone=tz, consents=dict.fromkeys(OWNED, True))
    timeline = [(NOW - m * 60.0, "contact", ch, "") for m, ch in history]
    timeline += [(NOW - m * 60.0, kind, ch, cat) for m, kind, ch, cat in events]
    for at, kind, ch, cat in sorted(timeline):
        if kind == "contact":
            state.apply_contact(ts=at, channel=ch)
        else:
            state.apply(ts=at, type=kind, channel=ch, value=10.0, category=cat)
    pending = [(NOW + m * 60.0, ch) for m, ch in waiting]
    assert_rules_asked_at_every_send_time(policy, state, pending, budget)


def assert_rules_asked_at_every_send_time(
    policy: ContactPolicy,
    state: CustomerState,
    pending: list[tuple[float, str]],
    budget: float | None,
) -> None:
    """Each action's verdict is that of every rule asked at its send time, in order."""
    result = policy.evaluate(
        state, SPACE, NOW, pending=pending, remaining_budget=budget, promoted_category="shoes"
    )
    facts = Facts(state, NOW, pending, "shoes")
    schedule = policy._quiet.schedule(state.timezone, NOW)
    for i, action in enumerate(SPACE):
        if action.is_nothing:
            continue
        ch = action.channel.value
        at, quiet = schedule[action.slot]
        verdict = (
            (("quiet_hours", quiet) if quiet is not None else None)
            or policy._time_rule(facts, at)
            or policy._channel_time_rule(facts, ch, at)
            or (None if budget is None else rule_budget(DEFAULT_COSTS[action.channel], budget))
        )
        got = result.reason(action.key)
        expected = (verdict[0], f"{ch}: {verdict[1]}") if verdict else None
        assert ((got.rule, got.reason) if got else None) == expected, action.key
        assert bool(result.eligible[i]) == (verdict is None)


@pytest.mark.parametrize("waterfall_hours", [None, 48.0])
@pytest.mark.parametrize("kind", ["purchase", "category", "complaint", "contact"])
@pytest.mark.parametrize("days", [1, 2, 7, 30])
@pytest.mark.parametrize("minutes", [-61, -1, 0, 1, 59, 61])
def test_every_rule_is_asked_near_where_it_stops_blocking(
    waterfall_hours: float | None, kind: str, days: int, minutes: int
) -> None:
    """An event a day, two, a week or 30 days old, give or take a minute or an hour."""
    policy = ContactPolicy(
        ContactPolicySettings(
            quiet_hours=None, waterfall_hours=waterfall_hours, caps={f"{days}d": 1}
        )
    )
    state = CustomerState("c", signup_at=0.0, timezone=PARIS, consents=dict.fromkeys(OWNED, True))
    at = NOW - days * D + minutes * 60.0
    if kind == "contact":
        state.apply_contact(ts=at, channel="sms")
    else:
        category = "shoes" if kind == "category" else "bags"
        state.apply(ts=at, type=kind.replace("category", "purchase"), value=10.0, category=category)
    assert_rules_asked_at_every_send_time(policy, state, [], None)
