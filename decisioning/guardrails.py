"""The contact policy: hard guardrails on who may be contacted, on which channel, and when.

Every rule reads the customer's state and answers with the reason it blocks an action, in words
a marketer reads, or ``None``. Rules are checked at the moment the message would go out (after
quiet-hours deferral), and frequency caps count what was sent plus what is already scheduled,
so a message planned for tomorrow evening counts in tomorrow evening's windows.

Rules run once per scope, not once per action: the customer (open ticket), each channel
(consent), the customer again (one voice: contacted within the arbitration window), each send
time (quiet hours, purchase and category cooldowns, the cap across channels) and each channel at
each send time (channel caps, complaints, the paid waterfall). A rule that cannot block any of
the send times (a cooldown over before the first, a cap too few recent contacts could reach)
is not asked at each of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from decisioning.actions import Action, ActionSpace, Slot
from decisioning.channels import (
    CONSENT_CHANNELS,
    DEFAULT_COSTS,
    PAID_CHANNELS,
    Channel,
)

# The settings live in their own module; their names stay importable from here.
from decisioning.contact_settings import HOUR, ContactPolicySettings, parse_window
from decisioning.customer_view import CustomerState
from decisioning.decision import BlockedAction, Decision
from decisioning.errors import InvalidInput
from decisioning.fatigue import DAY
from decisioning.guardrail_reasons import Reasons
from decisioning.guardrail_rules import (
    Facts,
    Pending,
    Verdict,
    budget,
    check_pending,
    may_reach,
    peak,
    span,
    waterfall,
)
from decisioning.identity_cache import IdentityCache
from decisioning.quiet_hours import QuietHours

_CONSENT = frozenset(c.value for c in CONSENT_CHANNELS)
_PAID = frozenset(c.value for c in PAID_CHANNELS)
#: a verdict not worked out yet (``None`` means allowed)
_UNSEEN: Any = object()


@dataclass(frozen=True, slots=True)
class Eligibility:
    """What the contact policy allows: a mask over the action space, and when each would send.

    ``eligible[0]`` (doing nothing) is always True; ``send_at`` holds epoch seconds after
    quiet-hours deferral; ``blocked`` names, for each blocked action, the first rule that
    blocks it (rules are checked in the order of ``RULES``).
    """

    eligible: np.ndarray
    send_at: np.ndarray
    blocked: tuple[BlockedAction, ...]

    def reason(self, action: str) -> BlockedAction | None:
        """Why ``action`` (a key) is blocked, or None when it is allowed."""
        return next((b for b in self.blocked if b.action == action), None)


@dataclass(frozen=True, slots=True)
class ScheduledDecision:
    """A contact decided at ``decided_at`` that goes out at ``send_at`` (epoch seconds)."""

    action: str
    decided_at: float
    send_at: float

    def __post_init__(self) -> None:
        try:
            Action.from_key(self.action)
        except ValueError:
            raise InvalidInput(f"scheduled action {self.action!r} is not an action key") from None

    @property
    def channel(self) -> str:
        return Action.from_key(self.action).channel.value

    @classmethod
    def from_decision(cls, decision: Decision) -> ScheduledDecision:
        when = decision.send_at or decision.decided_at
        return cls(decision.action.key, decision.decided_at.timestamp(), when.timestamp())


#: rule names, in the order they are checked (the first that blocks is reported)
RULES: tuple[str, ...] = (
    "support_ticket",
    "consent",
    "one_voice",
    "quiet_hours",
    "purchase_cooldown",
    "category_cooldown",
    "complaint",
    "channel_cap",
    "contact_cap",
    "waterfall",
    "budget",
)


class ContactPolicy:
    """Applies ``ContactPolicySettings`` to a customer: which actions may go, and when.

    Examples
    --------
    >>> policy = ContactPolicy(ContactPolicySettings())
    >>> state = CustomerState("c1", signup_at=0.0, consents={"email": True})
    >>> result = policy.evaluate(state, ActionSpace.build(), now=1_700_000_000.0)
    >>> bool(result.eligible[0]), result.reason("sms@now").rule
    (True, 'consent')
    """

    def __init__(self, settings: ContactPolicySettings | None = None) -> None:
        self.settings = s = settings or ContactPolicySettings()
        self._caps = tuple((*parse_window(w), cap) for w, cap in s.caps.items())
        self._channel_caps = {
            ch.value: tuple((*parse_window(w), cap) for w, cap in table.items())
            for ch, table in s.channel_caps.items()
        }
        self._quiet = QuietHours(s)
        self._reasons = Reasons()
        self._layouts = IdentityCache[_Layout](limit=64)
        self._starts = IdentityCache[float](limit=1024)  # a schedule's first send time
        self._all_channels = frozenset(c.value for c in Channel if c is not Channel.NONE)
        self._paid_live = _PAID if s.waterfall_hours is not None else frozenset()
        # the same verdicts recur across customers (no consent, an open ticket, ...): their
        # BlockedAction records are made once and shared (they are immutable)
        self._blocked: dict[tuple[str, Verdict], BlockedAction] = {}

    # -- the decision-time check --------------------------------------------------------------

    def evaluate(
        self,
        state: CustomerState,
        actions: ActionSpace,
        now: float,
        *,
        costs: np.ndarray | None = None,
        remaining_budget: float | None = None,
        promoted_category: str | None = None,
        pending: Sequence[Pending] = (),
        one_voice: bool = False,
    ) -> Eligibility:
        """Which of ``actions`` the customer may receive if decided at ``now``, and when.

        ``costs[i]`` is the cost of ``actions[i]`` (channel defaults when None);
        ``remaining_budget`` is what the objective may still spend this period (None: no limit);
        ``pending`` lists sends already scheduled but not yet sent, as times or
        ``(time, channel)``; a bare time counts against every channel's cap. ``one_voice``
        says the customer was already contacted within the arbitration window (by any
        objective): every contact the ticket and consent rules leave is then blocked for it,
        before the rules of each send time are worked out.
        """
        layout = self._layout(actions)
        n = len(actions)
        cost_list = layout.costs
        if costs is not None:
            if np.shape(costs) != (n,):
                raise InvalidInput(f"costs has shape {np.shape(costs)}, expected ({n},)")
            if remaining_budget is not None:  # costs are read by the budget rule only
                cost_list = np.asarray(costs, dtype=float).tolist()
        schedule = self._quiet.schedule(state.timezone, now)
        everyone = self._customer_rule(state)
        held = self._reasons("one_voice") if one_voice else None
        send_times = layout.send_times(schedule, now)
        closed = tuple(everyone or self._channel_rule(state, ch) or held for ch in layout.channels)
        if None not in closed:  # every channel closed as a whole (often: one voice, no consent)
            check_pending(state, pending)
            return self._all_closed(layout, closed, send_times)
        facts = Facts(state, now, pending, promoted_category)
        # the rules that may block at some send time: the others are not asked at each one
        start = self._first_send(schedule)
        timed = self._time_rule_live(facts, start)
        live = self._live_channels(facts, start)
        if remaining_budget is not None and remaining_budget >= max(cost_list):
            remaining_budget = None  # every action fits the budget left
        by_time: dict[float, Verdict] = {}
        by_pair: dict[tuple[str, float], Verdict] = {}
        shut: list[int] = []
        blocked: list[BlockedAction] = []
        for (ch, contacts), verdict in zip(layout.by_channel, closed, strict=True):
            if verdict is not None:
                # a verdict on the whole channel blocks its actions alike, in one go
                shut.extend(layout.indices[ch])
                blocked.extend(self._blocked_channel(layout, ch, contacts, verdict))
                continue
            asked = ch in live  # its caps or complaint rule may block
            waits = not asked and ch in self._paid_live  # the waterfall alone may block
            for i, slot, key in contacts:
                at, quiet = schedule[slot]
                if quiet is not None:
                    verdict = ("quiet_hours", quiet)
                else:
                    verdict = None
                    if timed:
                        verdict = by_time.get(at, _UNSEEN)
                        if verdict is _UNSEEN:
                            verdict = by_time[at] = self._time_rule(facts, at)
                    if verdict is None and (asked or waits):
                        pair = (ch, at)
                        verdict = by_pair.get(pair, _UNSEEN)
                        if verdict is _UNSEEN:
                            verdict = by_pair[pair] = (
                                self._channel_time_rule(facts, ch, at)
                                if asked
                                else self._waterfall(facts, ch, at)
                            )
                    if verdict is None and remaining_budget is not None:
                        verdict = budget(cost_list[i], remaining_budget)
                if verdict is not None:
                    shut.append(i)
                    blocked.append(self._blocked_action(key, ch, verdict))
        eligible = np.ones(n, dtype=bool)
        eligible[shut] = False
        return Eligibility(eligible, send_times, tuple(blocked))

    def _all_closed(
        self, layout: _Layout, closed: tuple[Verdict, ...], send_times: np.ndarray
    ) -> Eligibility:
        """Every channel closed by its verdict: one read-only result per distinct verdicts."""
        hit = layout.all_closed.get(closed)
        if hit is None:
            blocked = tuple(
                b
                for (ch, contacts), verdict in zip(layout.by_channel, closed, strict=True)
                for b in self._blocked_channel(layout, ch, contacts, verdict)  # type: ignore[arg-type]
            )
            eligible = np.zeros(len(layout.costs), dtype=bool)
            eligible[0] = True
            eligible.flags.writeable = False
            if len(layout.all_closed) >= 256:
                layout.all_closed.clear()
            hit = layout.all_closed[closed] = (eligible, blocked)
        return Eligibility(hit[0], send_times, hit[1])

    def _blocked_channel(
        self,
        layout: _Layout,
        ch: str,
        contacts: tuple[tuple[int, Slot, str], ...],
        verdict: tuple[str, str],
    ) -> tuple[BlockedAction, ...]:
        """The records of a channel's actions blocked alike (kept with the action space's
        layout: another space may give the channel other slots)."""
        memo = (ch, verdict)
        hit = layout.blocked_channels.get(memo)
        if hit is None:
            hit = tuple(self._blocked_action(key, ch, verdict) for _, _, key in contacts)
            layout.blocked_channels[memo] = hit
        return hit

    def _blocked_action(self, key: str, ch: str, verdict: tuple[str, str]) -> BlockedAction:
        memo = (key, verdict)
        hit = self._blocked.get(memo)
        if hit is None:
            if len(self._blocked) >= 8192:
                self._blocked.clear()
            hit = self._blocked[memo] = BlockedAction(key, verdict[0], f"{ch}: {verdict[1]}")
        return hit

    # -- the send-time check ------------------------------------------------------------------

    def revalidate(
        self,
        state: CustomerState,
        scheduled: ScheduledDecision,
        now: float,
        *,
        cost: float | None = None,
        remaining_budget: float | None = None,
        promoted_category: str | None = None,
        pending: Sequence[Pending] = (),
    ) -> tuple[bool, str | None]:
        """Whether a scheduled contact should still go out; ``(False, reason)`` cancels it.

        Cancelled when, since the decision, the customer bought, complained, had a support ticket
        opened or closed, reacted on another channel, or withdrew consent for this channel; or
        when a guardrail now blocks it at its send time (``max(now, scheduled.send_at)``, quiet
        hours are not deferred again). ``pending`` lists the *other* scheduled sends, and
        ``remaining_budget`` the budget this send may use.
        """
        channel = scheduled.channel
        if channel == Channel.NONE.value:
            return True, None
        since = scheduled.decided_at
        if state.last_purchase is not None and state.last_purchase > since:
            return False, "the customer made a purchase after the decision"
        if state.last_complaint is not None and state.last_complaint > since:
            return False, "the customer complained after the decision"
        if state.open_tickets > 0:
            return False, "a support ticket is open"
        if state.last_ticket_change is not None and state.last_ticket_change > since:
            return False, "a support ticket was opened or closed after the decision"
        for name, stats in state.channels.items():
            if name == channel:
                continue
            for reacted, what in ((stats.last_click, "clicked"), (stats.last_open, "opened")):
                if reacted is not None and reacted > since:
                    return False, f"the customer {what} a {name} message after the decision"
        if channel in _CONSENT and not state.consents.get(channel, False):
            return False, f"the customer no longer consents to {channel} messages"
        at = max(now, scheduled.send_at)
        facts = Facts(state, now, pending, promoted_category)
        verdict = self._customer_rule(state) or self._channel_rule(state, channel)
        if verdict is None and self._quiet.contains(at, state.timezone):
            verdict = ("quiet_hours", f"send time falls in quiet hours ({self._quiet.label} local)")
        verdict = (
            verdict or self._time_rule(facts, at) or self._channel_time_rule(facts, channel, at)
        )
        if verdict is None and remaining_budget is not None:
            price = DEFAULT_COSTS[Channel(channel)] if cost is None else cost
            verdict = budget(price, remaining_budget)
        if verdict is not None:
            return False, f"{channel}: {verdict[1]}"
        return True, None

    # -- rules, by scope: each returns (rule, reason) when it blocks, else None ---------------

    def _customer_rule(self, state: CustomerState) -> Verdict:
        if state.open_tickets > 0:
            return self._reasons("support_ticket")
        return None

    def _channel_rule(self, state: CustomerState, ch: str) -> Verdict:
        if ch in _CONSENT and not state.consents.get(ch, False):
            return self._reasons("consent", ch)
        return None

    def _first_send(self, schedule: dict[Slot, tuple[float, str | None]]) -> float:
        start = self._starts.get(schedule)
        if start is None:
            start = self._starts.put(schedule, min(at for at, _ in schedule.values()))
        return start

    def _time_rule_live(self, f: Facts, start: float) -> bool:
        """Whether a cooldown may block a send time from ``start`` on (each rule's own test,
        at ``start``: a later send time is further from the purchase)."""
        s, state = self.settings, f.state
        last = state.last_purchase
        if last is not None and start < last + s.purchase_cooldown_hours * HOUR:
            return True
        days = s.category_cooldown_days
        if f.category and days > 0:
            since = start - days * DAY
            return any(c == f.category and since < when for when, c in state.recent_purchases)
        return False

    def _live_channels(self, f: Facts, start: float) -> frozenset[str] | set[str]:
        """The channels whose caps or complaint rule may block a send time from ``start`` on.

        A cap is out of reach when fewer contacts than it are later than ``start`` minus its
        window (every window it counts ends at a send time or after); a complaint when it is
        older than its days at ``start``. Paid media are asked the waterfall either way: alone
        when they are not among these channels.
        """
        if any(may_reach(f.everything, start, window, cap) for window, _, cap in self._caps):
            return self._all_channels
        live: set[str] = set()
        last, days = f.state.last_complaint, self.settings.complaint_days
        if last is not None and start - last < days * DAY:
            live.update(_PAID)
        for ch, caps in self._channel_caps.items():
            times = f.times.get(ch, ())
            if any(cap == 0 or may_reach(times, start, window, cap) for window, _, cap in caps):
                live.add(ch)
        return live

    def _time_rule(self, f: Facts, at: float) -> Verdict:
        return self._purchase_cooldown(f, at) or self._category_cooldown(f, at)

    def _channel_time_rule(self, f: Facts, ch: str, at: float) -> Verdict:
        verdict = self._complaint(f, ch, at) or self._channel_cap(f, ch, at)
        if verdict is None:
            if at not in f.across:  # the same for every channel: once per send time
                f.across[at] = self._contact_cap(f, at)
            verdict = f.across[at]
        return verdict or self._waterfall(f, ch, at)

    def _waterfall(self, f: Facts, ch: str, at: float) -> Verdict:
        hours = self.settings.waterfall_hours
        if ch in _PAID and hours is not None:
            return waterfall(f, at, hours)
        return None

    def _purchase_cooldown(self, f: Facts, at: float) -> Verdict:
        last, hours = f.state.last_purchase, self.settings.purchase_cooldown_hours
        if last is not None and last <= at < last + hours * HOUR:
            return self._reasons("purchase_cooldown", span(at - last), hours)
        return None

    def _category_cooldown(self, f: Facts, at: float) -> Verdict:
        days = self.settings.category_cooldown_days
        if not f.category or days <= 0:
            return None
        since = at - days * DAY
        for when, category in f.state.recent_purchases:
            if category == f.category and since < when <= at:
                return self._reasons("category_cooldown", f.category, span(at - when), days)
        return None

    def _complaint(self, f: Facts, ch: str, at: float) -> Verdict:
        last, days = f.state.last_complaint, self.settings.complaint_days
        if ch in _PAID and last is not None and at - last < days * DAY:
            return self._reasons("complaint", span(at - last), days)
        return None

    def _channel_cap(self, f: Facts, ch: str, at: float) -> Verdict:
        times = f.times[ch]
        for window, words, cap in self._channel_caps.get(ch, ()):
            if cap == 0:
                return self._reasons("channel_off", ch)
            if len(times) < cap:  # fewer contacts in all than the cap: no window can reach it
                continue
            count = peak(times, at, window)
            if count >= cap:
                return self._reasons("channel_cap", ch, count, words)
        return None

    def _contact_cap(self, f: Facts, at: float) -> Verdict:
        for window, words, cap in self._caps:
            if len(f.everything) < cap:
                continue
            count = peak(f.everything, at, window)
            if count >= cap:
                return self._reasons("contact_cap", count, words)
        return None

    # -- the action space, unpacked once ------------------------------------------------------

    def _layout(self, actions: ActionSpace) -> _Layout:
        hit = self._layouts.get(actions)
        return hit if hit is not None else self._layouts.put(actions, _Layout.of(actions))


@dataclass(frozen=True, slots=True)
class _Layout:
    """An action space unpacked for the hot loop: (index, channel, slot, key) of each contact."""

    #: each channel with the (index, slot, key) of its actions, in action order
    by_channel: tuple[tuple[str, tuple[tuple[int, Slot, str], ...]], ...]
    #: the indices of each channel's actions
    indices: dict[str, tuple[int, ...]]
    costs: list[float]
    #: the channels, in action order
    channels: tuple[str, ...]
    #: the records of each channel blocked as a whole, by verdict (few: one per channel rule)
    blocked_channels: dict[tuple[str, Verdict], tuple[BlockedAction, ...]] = field(
        default_factory=dict
    )
    #: the eligibility when every channel is closed, by the channels' verdicts
    all_closed: dict[tuple[Verdict, ...], tuple[np.ndarray, tuple[BlockedAction, ...]]] = field(
        default_factory=dict
    )
    #: the send time of each action, by schedule (a schedule is kept per zone and moment)
    times: IdentityCache[np.ndarray] = field(default_factory=lambda: IdentityCache(limit=1024))

    @classmethod
    def of(cls, actions: ActionSpace) -> _Layout:
        grouped: dict[str, list[tuple[int, Slot, str]]] = {}
        for i, a in enumerate(actions):
            if not a.is_nothing:
                grouped.setdefault(a.channel.value, []).append((i, a.slot, a.key))
        by_channel = tuple((ch, tuple(contacts)) for ch, contacts in grouped.items())
        order = [i for _, contacts in by_channel for i, _, _ in contacts]
        if order != sorted(order):  # blocked actions are listed in action order
            raise InvalidInput("an action space must list each channel's actions together")
        return cls(
            by_channel=by_channel,
            channels=tuple(ch for ch, _ in by_channel),
            indices={ch: tuple(i for i, _, _ in contacts) for ch, contacts in by_channel},
            costs=[DEFAULT_COSTS[a.channel] for a in actions],
        )

    def send_times(self, schedule: dict[Slot, tuple[float, str | None]], now: float) -> np.ndarray:
        """When each action would go out under ``schedule`` (made at ``now``); read-only."""
        hit = self.times.get(schedule)
        if hit is not None:
            return hit
        times = np.full(len(self.costs), now)  # one cost per action
        for _, contacts in self.by_channel:
            for i, slot, _ in contacts:
                times[i] = schedule[slot][0]
        times.flags.writeable = False
        return self.times.put(schedule, times)
