"""The contact policy: hard guardrails on who may be contacted, on which channel, and when.

Every rule reads the customer's state and answers with the reason it blocks an action, in words
a marketer reads, or ``None``. Rules are checked at the moment the message would go out (after
quiet-hours deferral), and frequency caps count what was sent plus what is already scheduled,
so a message planned for tomorrow evening counts in tomorrow evening's windows.

Rules run once per scope, not once per action: the customer (open ticket), each channel
(consent), each send time (quiet hours, purchase and category cooldowns, the cap across
channels) and each channel at each send time (channel caps, complaints, the paid waterfall).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from decisioning.actions import ALL_SLOTS, Action, ActionSpace, Slot, send_at, zone
from decisioning.channels import (
    CONSENT_CHANNELS,
    DEFAULT_COSTS,
    OWNED_CHANNELS,
    PAID_CHANNELS,
    Channel,
)

# The settings live in their own module; their names stay importable from here.
from decisioning.contact_settings import HOUR, ContactPolicySettings, parse_window
from decisioning.customer_view import CustomerState
from decisioning.decision import BlockedAction, Decision
from decisioning.errors import InvalidInput
from decisioning.fatigue import DAY

_CONSENT = frozenset(c.value for c in CONSENT_CHANNELS)
_OWNED = frozenset(c.value for c in OWNED_CHANNELS)
_PAID = frozenset(c.value for c in PAID_CHANNELS)
_SCHEDULED_SLOTS = tuple(s for s in ALL_SLOTS if s is not Slot.NOW)
#: a pending send: its time, or (time, channel) when the channel is known
Pending = float | tuple[float, str]


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
    "quiet_hours",
    "purchase_cooldown",
    "category_cooldown",
    "complaint",
    "channel_cap",
    "contact_cap",
    "waterfall",
    "budget",
)

Verdict = tuple[str, str] | None  # (rule, reason) or allowed


class _Facts:
    """What the rules read, gathered once per evaluation: contact times sorted per channel."""

    __slots__ = ("state", "now", "times", "everything", "owned_pending", "category", "across")

    def __init__(
        self, state: CustomerState, now: float, pending: Sequence[Pending], category: str | None
    ) -> None:
        unknown: list[float] = []
        by_channel: dict[str, list[float]] = {}
        for item in pending:
            if isinstance(item, tuple):
                when, channel = item
                if channel not in state.channels:
                    if channel == Channel.NONE.value:
                        continue
                    raise InvalidInput(f"pending send on unknown channel {channel!r}")
                by_channel.setdefault(channel, []).append(float(when))
            else:
                unknown.append(float(item))
        everything = list(unknown)
        times: dict[str, list[float]] = {}
        for name, stats in state.channels.items():
            own = [*stats.recent, *by_channel.get(name, ())]
            everything.extend(own)
            # a pending send of unknown channel counts against every channel's cap
            own.extend(unknown)
            own.sort()
            times[name] = own
        everything.sort()
        self.state, self.now, self.category = state, now, category
        self.times, self.everything = times, everything
        self.across: dict[float, Verdict] = {}  # contact-cap verdict per send time
        self.owned_pending = unknown + [
            t for c, ts in by_channel.items() if c in _OWNED for t in ts
        ]


def _peak(times: list[float], at: float, window: float) -> int:
    """Most contacts in ``times`` in any window of length ``window`` that also holds ``at``.

    A window is ``(t - window, t]``; the busiest one holding ``at`` ends at ``at`` or at one of
    the contacts after it (counts only rise when a contact enters).
    """
    hi = bisect_right(times, at)
    best = hi - bisect_right(times, at - window)
    end = at + window
    j, n = hi, len(times)
    while j < n and times[j] < end:
        t = times[j]
        j += 1
        count = j - bisect_right(times, t - window)
        if count > best:
            best = count
    return best


def _span(seconds: float) -> str:
    hours = max(0.0, seconds) / HOUR
    if hours < 48:
        value = round(hours)
        return f"{value} hour{'' if value == 1 else 's'}"
    days = round(hours / 24)
    return f"{days} day{'' if days == 1 else 's'}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
        if s.quiet_hours is None:
            self._quiet: tuple[float, float, time, str] | None = None
        else:
            start, end = s.quiet_hours
            label = f"{start.strftime('%H:%M')}-{end.strftime('%H:%M')}"
            self._quiet = (_seconds(start), _seconds(end), end, label)
        self._layouts: dict[int, tuple[ActionSpace, _Layout]] = {}
        self._slot_cache: dict[tuple[Any, ...], dict[Slot, tuple[float, str | None]]] = {}

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
    ) -> Eligibility:
        """Which of ``actions`` the customer may receive if decided at ``now``, and when.

        ``costs[i]`` is the cost of ``actions[i]`` (channel defaults when None);
        ``remaining_budget`` is what the objective may still spend this period (None: no limit);
        ``pending`` lists sends already scheduled but not yet sent, as times or
        ``(time, channel)``; a bare time counts against every channel's cap.
        """
        layout = self._layout(actions)
        n = len(actions)
        if costs is None:
            cost_list = layout.costs
        else:
            if np.shape(costs) != (n,):
                raise InvalidInput(f"costs has shape {np.shape(costs)}, expected ({n},)")
            cost_list = np.asarray(costs, dtype=float).tolist()
        facts = _Facts(state, now, pending, promoted_category)
        schedule = self._schedule(state.timezone, now)
        everyone = self._customer_rule(facts)
        by_channel = {ch: self._channel_rule(facts, ch) for ch in layout.channels}
        by_time: dict[float, Verdict] = {}
        by_pair: dict[tuple[str, float], Verdict] = {}
        eligible = [True] * n
        times = [now] * n
        blocked: list[BlockedAction] = []
        for i, ch, slot, key in layout.contacts:
            at, quiet = schedule[slot]
            times[i] = at
            verdict = everyone or by_channel[ch]
            if verdict is None and quiet is not None:
                verdict = ("quiet_hours", quiet)
            if verdict is None:
                if at not in by_time:
                    by_time[at] = self._time_rule(facts, at)
                verdict = by_time[at]
            if verdict is None:
                pair = (ch, at)
                if pair not in by_pair:
                    by_pair[pair] = self._channel_time_rule(facts, ch, at)
                verdict = by_pair[pair]
            if verdict is None and remaining_budget is not None:
                verdict = _budget(cost_list[i], remaining_budget)
            if verdict is not None:
                eligible[i] = False
                blocked.append(BlockedAction(key, verdict[0], f"{ch}: {verdict[1]}"))
        return Eligibility(np.array(eligible), np.array(times), tuple(blocked))

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
        facts = _Facts(state, now, pending, promoted_category)
        verdict = self._customer_rule(facts) or self._channel_rule(facts, channel)
        if verdict is None and self._quiet is not None and _inside(self._quiet, at, state.timezone):
            verdict = ("quiet_hours", f"send time falls in quiet hours ({self._quiet[3]} local)")
        verdict = (
            verdict or self._time_rule(facts, at) or self._channel_time_rule(facts, channel, at)
        )
        if verdict is None and remaining_budget is not None:
            price = DEFAULT_COSTS[Channel(channel)] if cost is None else cost
            verdict = _budget(price, remaining_budget)
        if verdict is not None:
            return False, f"{channel}: {verdict[1]}"
        return True, None

    # -- rules, by scope: each returns (rule, reason) when it blocks, else None ---------------

    def _customer_rule(self, f: _Facts) -> Verdict:
        if f.state.open_tickets > 0:
            return "support_ticket", "support ticket open: no marketing until it is closed"
        return None

    def _channel_rule(self, f: _Facts, ch: str) -> Verdict:
        if ch in _CONSENT and not f.state.consents.get(ch, False):
            return "consent", f"no consent for {ch} messages (never given, or unsubscribed)"
        return None

    def _time_rule(self, f: _Facts, at: float) -> Verdict:
        return self._purchase_cooldown(f, at) or self._category_cooldown(f, at)

    def _channel_time_rule(self, f: _Facts, ch: str, at: float) -> Verdict:
        verdict = self._complaint(f, ch, at) or self._channel_cap(f, ch, at)
        if verdict is None:
            if at not in f.across:  # the same for every channel: once per send time
                f.across[at] = self._contact_cap(f, at)
            verdict = f.across[at]
        hours = self.settings.waterfall_hours
        if verdict is None and ch in _PAID and hours is not None:
            verdict = _waterfall(f, at, hours)
        return verdict

    def _purchase_cooldown(self, f: _Facts, at: float) -> Verdict:
        last, hours = f.state.last_purchase, self.settings.purchase_cooldown_hours
        if last is not None and last <= at < last + hours * HOUR:
            return "purchase_cooldown", (
                f"purchase cooldown (a purchase {_span(at - last)} before the send time; "
                f"no marketing for {hours:g} hours after a purchase)"
            )
        return None

    def _category_cooldown(self, f: _Facts, at: float) -> Verdict:
        days = self.settings.category_cooldown_days
        if not f.category or days <= 0:
            return None
        since = at - days * DAY
        for when, category in f.state.recent_purchases:
            if category == f.category and since < when <= at:
                return "category_cooldown", (
                    f"category cooldown ({f.category!r} was bought {_span(at - when)} before the "
                    f"send time; no promoting a category bought within {days:g} days)"
                )
        return None

    def _complaint(self, f: _Facts, ch: str, at: float) -> Verdict:
        last, days = f.state.last_complaint, self.settings.complaint_days
        if ch in _PAID and last is not None and at - last < days * DAY:
            return "complaint", (
                f"the customer complained {_span(at - last)} before the send time; no paid media "
                f"for {days:g} days after a complaint"
            )
        return None

    def _channel_cap(self, f: _Facts, ch: str, at: float) -> Verdict:
        for window, words, cap in self._channel_caps.get(ch, ()):
            if cap == 0:
                return "channel_cap", f"{ch} is switched off by the contact policy (cap 0)"
            count = _peak(f.times[ch], at, window)
            if count >= cap:
                return "channel_cap", (
                    f"frequency cap reached ({_plural(count, ch + ' message')} in the last {words})"
                )
        return None

    def _contact_cap(self, f: _Facts, at: float) -> Verdict:
        for window, words, cap in self._caps:
            count = _peak(f.everything, at, window)
            if count >= cap:
                return "contact_cap", (
                    f"contact cap reached ({_plural(count, 'message')} on any channel in the last "
                    f"{words})"
                )
        return None

    # -- send times ---------------------------------------------------------------------------

    def _schedule(self, timezone: str, now: float) -> dict[Slot, tuple[float, str | None]]:
        """Send time and quiet-hours verdict of every slot for a decision at ``now``."""
        tz = zone(timezone)
        local = datetime.fromtimestamp(now, tz)
        # Scheduled slots depend only on the local date and hour (see actions.send_at): cache.
        key = (timezone, local.year, local.month, local.day, local.hour)
        cached = self._slot_cache.get(key)
        if cached is None:
            moment = datetime.fromtimestamp(now, UTC)
            cached = {
                slot: self._defer(send_at(slot, moment, timezone).timestamp(), tz)
                for slot in _SCHEDULED_SLOTS
            }
            if len(self._slot_cache) >= 4096:
                self._slot_cache.clear()
            self._slot_cache[key] = cached
        out = dict(cached)
        out[Slot.NOW] = self._defer(now, tz, local)
        return out

    def _defer(
        self, at: float, tz: ZoneInfo, local: datetime | None = None
    ) -> tuple[float, str | None]:
        """The time a message planned for ``at`` may go, and why it may not when it may not."""
        if self._quiet is None:
            return at, None
        start, end, end_time, label = self._quiet
        local = local or datetime.fromtimestamp(at, tz)
        clock = _clock(local)
        if not _in_span(clock, start, end):
            return at, None
        if self.settings.quiet_hours_mode == "block":
            return at, f"send time falls in quiet hours ({label} local)"
        target = local.replace(
            hour=end_time.hour,
            minute=end_time.minute,
            second=end_time.second,
            microsecond=0,
            fold=0,
        )
        if clock >= end:
            target += timedelta(days=1)  # wall-clock arithmetic: DST keeps the local hour
        moved = target.timestamp()
        limit = self.settings.max_defer_hours
        if moved - at > limit * HOUR:
            return at, (
                f"quiet hours ({label} local): the next allowed time is {_span(moved - at)} "
                f"away, more than the {limit:g}-hour limit"
            )
        return moved, None

    def _layout(self, actions: ActionSpace) -> _Layout:
        hit = self._layouts.get(id(actions))
        if hit is not None and hit[0] is actions:
            return hit[1]
        layout = _Layout.of(actions)
        if len(self._layouts) >= 64:
            self._layouts.clear()
        self._layouts[id(actions)] = (actions, layout)
        return layout


@dataclass(frozen=True, slots=True)
class _Layout:
    """An action space unpacked for the hot loop: (index, channel, slot, key) of each contact."""

    contacts: tuple[tuple[int, str, Slot, str], ...]
    channels: tuple[str, ...]
    costs: list[float]

    @classmethod
    def of(cls, actions: ActionSpace) -> _Layout:
        contacts = tuple(
            (i, a.channel.value, a.slot, a.key) for i, a in enumerate(actions) if not a.is_nothing
        )
        return cls(
            contacts=contacts,
            channels=tuple(c.value for c in actions.channels),
            costs=[DEFAULT_COSTS[a.channel] for a in actions],
        )


def _waterfall(f: _Facts, at: float, hours: float) -> Verdict:
    """Paid media only once the latest owned-channel message went unanswered for ``hours``."""
    last = f.state.last_owned_contact
    for when in f.owned_pending:  # a scheduled owned message restarts the wait
        if when <= at and (last is None or when > last):
            last = when
    if last is None:
        return "waterfall", "owned channels first: no email, sms, push or whatsapp message sent yet"
    response = f.state.last_owned_response
    if response is not None and response >= last:
        return "waterfall", "owned channels first: the customer answered the last owned message"
    if at - last < hours * HOUR:
        return "waterfall", (
            f"owned channels first: the last owned message is {_span(at - last)} old at the send "
            f"time; paid media waits {hours:g} hours for a response"
        )
    return None


def _budget(cost: float, remaining: float) -> Verdict:
    if cost > 0 and cost > remaining:
        return "budget", (
            f"budget exhausted (this message costs {cost:.4g}, {max(remaining, 0.0):.4g} left "
            f"for the period)"
        )
    return None


def _seconds(moment: time) -> float:
    return moment.hour * HOUR + moment.minute * 60 + moment.second


def _in_span(clock: float, start: float, end: float) -> bool:
    return start <= clock < end if start < end else (clock >= start or clock < end)


def _clock(local: datetime) -> float:
    """Seconds since local midnight, by the wall clock."""
    return local.hour * HOUR + local.minute * 60 + local.second + local.microsecond / 1e6


def _inside(quiet: tuple[float, float, time, str], at: float, timezone: str) -> bool:
    return _in_span(_clock(datetime.fromtimestamp(at, zone(timezone))), quiet[0], quiet[1])
