"""Short explanations of decisions, in the words a marketer reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from decisioning.actions import Action, Slot, zone
from decisioning.decision import ActionValue, BlockedAction
from decisioning.identity_cache import IdentityCache

_CHANNEL_WORDS = {
    "email": "an e-mail",
    "sms": "an SMS",
    "push": "a push notification",
    "whatsapp": "a WhatsApp message",
    "paid_social": "a paid social ad",
}
_SLOT_WORDS = {
    Slot.NOW: "now",
    Slot.TODAY_NOON: "at noon",
    Slot.TODAY_EVENING: "this evening",
    Slot.TOMORROW_MORNING: "tomorrow morning",
    Slot.TOMORROW_EVENING: "tomorrow evening",
    Slot.WEEKEND_MORNING: "on the weekend morning",
}
_RULE_WORDS = {
    "support_ticket": "a support ticket is open",
    "consent": "no consent",
    "quiet_hours": "quiet hours",
    "purchase_cooldown": "just bought",
    "category_cooldown": "just bought this category",
    "complaint": "recent complaint",
    "channel_cap": "channel frequency cap",
    "contact_cap": "frequency cap",
    "waterfall": "owned channels not tried first",
    "budget": "budget spent",
    "one_voice": "already contacted by another objective",
}


def describe_action(action: Action) -> str:
    """``send an e-mail this evening`` or ``do nothing``."""
    if action.is_nothing:
        return "do nothing"
    return f"send {_CHANNEL_WORDS[action.channel.value]} {_SLOT_WORDS[action.slot]}"


def local_time(timezone: str, ts: float) -> str:
    """``Sat 28 Nov 10:00 America/New_York``: a send time as the customer's clock reads it."""
    return f"{datetime.fromtimestamp(ts, zone(timezone)):%a %d %b %H:%M} {timezone}"


def explain(
    *,
    action: Action,
    objective_name: str | None,
    expected_value: float | None,
    nothing_value: float | None,
    alternatives: Sequence[ActionValue] = (),
    blocked: Sequence[BlockedAction] = (),
    holdout: bool = False,
    fallback: bool = False,
    n_actions: int = 0,
    sends_at: str | None = None,
) -> str:
    """One or two sentences: what was decided, why, and what the contact policy ruled out.

    ``sends_at`` is a contact's send time in the customer's own time (:func:`local_time`): a
    slot such as "tomorrow morning" is the customer's morning, which the UTC time an
    orchestrator receives does not show.
    """
    goal = f" for {objective_name}" if objective_name else ""
    if holdout:
        return (
            f"Do nothing{goal}: this customer is in the objective's holdout, kept to measure lift."
        )
    what = describe_action(action)
    if sends_at is not None and not action.is_nothing:
        what += f" ({sends_at})"
    parts = [what[0].upper() + what[1:] + goal]
    if fallback:
        parts.append("(rule-based fallback: no trained model yet)")
    if expected_value is not None and not action.is_nothing:
        base = nothing_value if nothing_value is not None else 0.0
        parts.append(f"expected net value {expected_value:+.2f} vs {base:+.2f} for doing nothing")
    elif action.is_nothing:
        best = next((a for a in alternatives if a.action != "none"), None)
        if best is not None:
            parts.append(
                f"no contact is expected to pay off (best: {best.action} at "
                f"{best.expected_value:+.2f} vs {(nothing_value or 0.0):+.2f})"
            )
        elif n_actions and len(blocked) >= n_actions - 1:
            parts.append("every contact is blocked by the contact policy")
    text = "; ".join([parts[0] + (" " + parts[1] if fallback else ""), *parts[1 + fallback :]])
    if blocked:
        text += f". Blocked: {_blocked_words(blocked)}"
    return text + "."


#: the words of the last blocked records met: the contact policy shares one tuple among the
#: customers whose channels all close alike
_SAID = IdentityCache[str](limit=256)


def _blocked_words(blocked: Sequence[BlockedAction]) -> str:
    """``frequency cap (12), no consent (6)``: the three rules that block most actions."""
    hit = _SAID.get(blocked)
    if hit is not None:
        return hit
    rules: dict[str, int] = {}
    for b in blocked:
        rules[b.rule] = rules.get(b.rule, 0) + 1
    # the three rules that block most actions, the first seen first among equals
    top = sorted(rules.items(), key=lambda item: -item[1])[:3]
    words = ", ".join(f"{_RULE_WORDS.get(rule, rule)} ({count})" for rule, count in top)
    if isinstance(blocked, tuple):  # immutable: its words cannot change
        _SAID.put(blocked, words)
    return words
