"""What a guardrail says when it blocks: the reasons a marketer reads, each worded once.

A reason depends on a few figures only (a channel, a count of messages, a span of time rounded
to hours or days, a setting), and the same figures recur across customers and send times: each
reason is worded once and then shared, its ``(rule, text)`` verdict with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decisioning.guardrail_rules import plural

#: the text of each rule's reason, from its figures
WORDING: dict[str, Callable[..., str]] = {
    "support_ticket": lambda: "support ticket open: no marketing until it is closed",
    "consent": lambda ch: f"no consent for {ch} messages (never given, or unsubscribed)",
    "one_voice": lambda: "already contacted within the arbitration window",
    "purchase_cooldown": lambda ago, hours: (
        f"purchase cooldown (a purchase {ago} before the send time; "
        f"no marketing for {hours:g} hours after a purchase)"
    ),
    "category_cooldown": lambda category, ago, days: (
        f"category cooldown ({category!r} was bought {ago} before the send time; "
        f"no promoting a category bought within {days:g} days)"
    ),
    "complaint": lambda ago, days: (
        f"the customer complained {ago} before the send time; no paid media "
        f"for {days:g} days after a complaint"
    ),
    "channel_off": lambda ch: f"{ch} is switched off by the contact policy (cap 0)",
    "channel_cap": lambda ch, count, words: (
        f"frequency cap reached ({plural(count, ch + ' message')} in the last {words})"
    ),
    "contact_cap": lambda count, words: (
        f"contact cap reached ({plural(count, 'message')} on any channel in the last {words})"
    ),
}
#: the rule a reason is reported under, where its wording has a name of its own
_RULE = {"channel_off": "channel_cap"}


class Reasons:
    """The verdicts of the rules, worded once per distinct figures (at most ``limit`` kept)."""

    def __init__(self, limit: int = 8192) -> None:
        self.limit = limit
        self._said: dict[tuple[Any, ...], tuple[str, str]] = {}

    def __call__(self, wording: str, *figures: Any) -> tuple[str, str]:
        """The verdict ``(rule, reason)`` of ``wording`` (a key of ``WORDING``) for ``figures``."""
        key = (wording, *figures)
        hit = self._said.get(key)
        if hit is None:
            if len(self._said) >= self.limit:
                self._said.clear()
            hit = self._said[key] = (_RULE.get(wording, wording), WORDING[wording](*figures))
        return hit
