"""The document a decision-log row keeps beside its columns, and how it reads back.

What a row's columns do not hold: the action space, the distribution the action was drawn
from, which actions were eligible, the best alternatives, the blocked actions and why, the
explanation and the request context. Most decisions do nothing because the contact policy
blocks every contact, so the blocked actions are most of the document. It is kept compact:

* ``"space"`` names the action space by a key of its actions (:func:`space_key`); the actions
  themselves are kept once, in the ``action_spaces`` table (31 actions took half of a
  document);
* ``"reasons"`` lists each distinct ``[rule, reason]`` once (a channel's slots share theirs);
* ``"blocked"`` lists ``[action, reason]`` pairs in the decision's order: the action's index in
  the action space (its key if it is not there) and the index in ``"reasons"``;
* ``"eligible"`` is a string of ``0`` and ``1``, one per action.

A typical document of 31 actions went from 4.5 KB to 1.4 KB with the compact blocked list and
eligibility, and to 0.9 KB with the action space kept apart. Documents written before, with
their ``"actions"``, ``[action, rule, reason]`` triples or a list of booleans, read back alike.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from decisioning.decision import ActionValue, BlockedAction, Decision
from decisioning.identity_cache import IdentityCache


def finite(value: float | None) -> float | None:
    """The value as a float, None for a missing or NaN one (JSON and PostgreSQL refuse NaN)."""
    return None if value is None or math.isnan(value) else float(value)


@lru_cache(maxsize=256)
def _positions(actions: tuple[str, ...]) -> dict[str, int]:
    return {key: i for i, key in enumerate(actions)}


#: the key of the last action spaces met (an objective's decisions share one tuple)
_KEYS = IdentityCache[str](limit=256)


def space_key(actions: Sequence[str]) -> str:
    """The key an action space is kept under: 16 hex digits of a hash of its action keys, in
    order (the same actions in the same order always share one key)."""
    key = _KEYS.get(actions)
    if key is None:
        digest = hashlib.blake2b("\n".join(actions).encode(), digest_size=8).hexdigest()
        key = _KEYS.put(actions, digest)
    return key


def log_document(decision: Decision) -> dict[str, Any]:
    """The document of a decision's log row (JSON-ready); its action space is kept apart,
    under :func:`space_key` of ``decision.actions``."""
    actions = tuple(decision.actions)
    reasons, blocked = _compact(actions, decision.blocked)
    return {
        "space": space_key(decision.actions),
        "distribution": list(map(float, decision.distribution)),
        "eligible": "".join(["1" if e else "0" for e in decision.eligible]),
        "alternatives": [[a.action, finite(a.expected_value)] for a in decision.alternatives],
        "reasons": reasons,  # (rule, reason) tuples: JSON arrays
        "blocked": blocked,
        "explanation": decision.explanation,
        "context": dict(decision.context),
    }


#: the compact form of the last blocked tuples met, with their action keys: the contact policy
#: shares one tuple among the customers whose channels all close alike (most of a batch)
_COMPACT = IdentityCache[tuple[tuple[str, ...], list[Any], list[Any]]](limit=256)


def _compact(
    actions: tuple[str, ...], blocked: tuple[BlockedAction, ...]
) -> tuple[list[Any], list[Any]]:
    """The ``"reasons"`` and ``"blocked"`` lists of a document (shared: never changed)."""
    hit = _COMPACT.get(blocked)
    if hit is not None and hit[0] is actions:
        return hit[1], hit[2]
    position = _positions(actions)
    reasons: dict[tuple[str, str], int] = {}  # each pair's index: the count when first met
    pairs = [
        [position.get(b.action, b.action), reasons.setdefault((b.rule, b.reason), len(reasons))]
        for b in blocked
    ]
    _, listed, pairs = _COMPACT.put(blocked, (actions, list(reasons), pairs))
    return listed, pairs


def actions_of(doc: dict[str, Any], space: Callable[[str], tuple[str, ...]]) -> tuple[str, ...]:
    """The document's action keys: its own (written before spaces were kept apart), else the
    kept space its ``"space"`` names (``space(key)``)."""
    own = doc.get("actions")
    return tuple(own) if own is not None else space(doc["space"])


def eligible_of(doc: dict[str, Any]) -> tuple[bool, ...]:
    """Which actions were eligible, from either form of the document."""
    eligible = doc["eligible"]
    if isinstance(eligible, str):
        return tuple(c == "1" for c in eligible)
    return tuple(eligible)


def blocked_of(doc: dict[str, Any], actions: Sequence[str]) -> tuple[BlockedAction, ...]:
    """The blocked actions with their rule and reason, from either form of the document."""
    reasons = doc.get("reasons")
    if reasons is None:  # written before the compact form: [action, rule, reason] triples
        return tuple(BlockedAction(a, rule, why) for a, rule, why in doc["blocked"])
    return tuple(
        BlockedAction(actions[a] if isinstance(a, int) else a, *reasons[k])
        for a, k in doc["blocked"]
    )


def alternatives_of(doc: dict[str, Any]) -> tuple[ActionValue, ...]:
    """The best alternatives with their expected net value."""
    return tuple(ActionValue(a, v) for a, v in doc["alternatives"])
