"""What the guardrail rules read, and the rules that need nothing but it.

``Facts`` gathers a customer's contact times once per evaluation (sent plus pending, sorted per
channel) so that every frequency rule counts windows by bisection; ``peak`` is that count.
The paid-media waterfall and the budget are rules of the facts alone; every rule answers with a
``Verdict``: ``(rule, reason)`` when it blocks, in words a marketer reads, else ``None``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from decisioning.channels import OWNED_CHANNELS, Channel
from decisioning.contact_settings import HOUR
from decisioning.customer_view import CustomerState
from decisioning.errors import InvalidInput

_OWNED = frozenset(c.value for c in OWNED_CHANNELS)
#: a pending send: its time, or (time, channel) when the channel is known
Pending = float | tuple[float, str]
Verdict = tuple[str, str] | None  # (rule, reason) or allowed


class Facts:
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
                    raise _unknown(channel)
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


def check_pending(state: CustomerState, pending: Sequence[Pending]) -> None:
    """What ``Facts`` checks of the pending sends, for an evaluation that needs no facts."""
    for item in pending:
        if isinstance(item, tuple):
            channel = item[1]
            if channel not in state.channels and channel != Channel.NONE.value:
                raise _unknown(channel)


def _unknown(channel: str) -> InvalidInput:
    return InvalidInput(f"pending send on unknown channel {channel!r}")


def peak(times: list[float], at: float, window: float) -> int:
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


def may_reach(times: Sequence[float], start: float, window: float, cap: int) -> bool:
    """Whether a window holding a send time from ``start`` on can count ``cap`` of ``times``.

    Such a window ends at ``start`` or later, so it counts only contacts after
    ``start - window``: fewer of them than ``cap`` and ``peak`` cannot reach it.
    """
    return len(times) - bisect_right(times, start - window) >= cap


_HOURS = tuple(f"{v} hour{'' if v == 1 else 's'}" for v in range(49))


def span(seconds: float) -> str:
    """A duration in words: hours up to two days, then days."""
    hours = max(0.0, seconds) / HOUR
    if hours < 48:
        return _HOURS[round(hours)]
    days = round(hours / 24)
    return f"{days} day{'' if days == 1 else 's'}"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def waterfall(f: Facts, at: float, hours: float) -> Verdict:
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
            f"owned channels first: the last owned message is {span(at - last)} old at the send "
            f"time; paid media waits {hours:g} hours for a response"
        )
    return None


def budget(cost: float, remaining: float) -> Verdict:
    if cost > 0 and cost > remaining:
        return "budget", (
            f"budget exhausted (this message costs {cost:.4g}, {max(remaining, 0.0):.4g} left "
            f"for the period)"
        )
    return None
