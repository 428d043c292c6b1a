"""Folding events and contacts into customer and visitor states, following identity links.

Real-time ingestion and the bulk history load both go through :class:`Replay`, so a state
built from a history file equals the state built from the same events streamed one batch at a
time.

Routing rules:

* an event with a ``customer_id`` goes to that customer's state; a customer the store does not
  know yet gets a cold-start state (``CustomerState(customer_id)``, ``known=False``), which a
  later customer record completes;
* an ``identify`` event carrying both ids merges the visitor's state into the customer's
  (``CustomerState.merge``) and links the anonymous id to the customer;
* an event with only an ``anonymous_id`` goes to the linked customer, or to the visitor's own
  state while no identify event has linked it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from decisioning.channels import DEFAULT_COSTS, Channel
from decisioning.customer_view import CustomerState
from decisioning.fatigue import FatigueSettings
from decisioning.records import EventType

_IDENTIFY = EventType.IDENTIFY.value
_NONE = Channel.NONE.value
_DEFAULT_COST = {c.value: cost for c, cost in DEFAULT_COSTS.items()}


@dataclass(frozen=True, slots=True)
class Profile:
    """What a customer record says about a customer (the non-behavioural part of the state)."""

    customer_id: str
    signup_at: float
    timezone: str
    consents: Mapping[str, bool]
    attributes: Mapping[str, Any]


def apply_profile(
    state: CustomerState | None,
    profile: Profile,
    fatigue: FatigueSettings | None,
    *,
    consents: bool = True,
) -> CustomerState:
    """The state with the customer record applied: behaviour kept, profile replaced.

    Consents are those of the record (channels it does not name are not consented), as for a
    new customer; a cold-start state becomes a known customer. ``consents=False`` keeps the
    consents of a known customer's state (a history's customer table holds the consents at the
    start of the history, which its events have changed since).
    """
    if state is None:
        return CustomerState(
            profile.customer_id,
            signup_at=profile.signup_at,
            timezone=profile.timezone,
            consents=profile.consents,
            attributes=profile.attributes,
            fatigue=fatigue,
        )
    state.signup_at = profile.signup_at
    state.timezone = profile.timezone
    if consents or not state.known:
        state.consents = {name: False for name in state.consents}
        state.consents.update(profile.consents)
    state.attributes = dict(profile.attributes)
    state.known = True
    return state


def contact_cost(channel: str, cost: float | None) -> float:
    """The cost a contact adds to the customer's spend: as logged, else the channel default."""
    if cost is None or math.isnan(cost):
        return _DEFAULT_COST.get(channel, 0.0)
    return float(cost)


@dataclass
class ReplayCounts:
    """How many events went where during one replay."""

    applied: int = 0
    anonymous: int = 0
    merged: int = 0


class Replay:
    """Applies events and contacts to states loaded (and locked) by the caller.

    ``customers`` must hold every customer the events and contacts can reach; ``visitors``
    every anonymous id they carry (``None``: no state yet, or already merged), and ``links``
    the customer each anonymous id is linked to (``None``: not linked).
    """

    def __init__(
        self,
        *,
        customers: dict[str, CustomerState],
        visitors: dict[str, CustomerState | None],
        links: dict[str, str | None],
        fatigue: FatigueSettings | None = None,
    ) -> None:
        self.customers = customers
        self.visitors = visitors
        self.links = links
        self.fatigue = fatigue
        self.counts = ReplayCounts()
        self.touched_visitors: set[str] = set()

    def event(
        self,
        *,
        ts: float,
        type: str,
        customer_id: str | None,
        anonymous_id: str | None,
        channel: str | None = None,
        value: float | None = None,
        category: str | None = None,
    ) -> None:
        """Fold one event (plain fields, ``ts`` in epoch seconds) into the state it belongs to."""
        if value is not None and math.isnan(value):
            value = None
        if customer_id:
            state = self.customers[customer_id]
            if anonymous_id and type == _IDENTIFY:
                self._identify(anonymous_id, customer_id, state)
        else:
            assert anonymous_id, "an event needs a customer_id or an anonymous_id"
            linked = self.links.get(anonymous_id)
            if linked is not None:
                state = self.customers[linked]
            else:
                visitor = self.visitors.get(anonymous_id)
                if visitor is None:
                    visitor = CustomerState(anonymous_id, fatigue=self.fatigue)
                    self.visitors[anonymous_id] = visitor
                state = visitor
                self.touched_visitors.add(anonymous_id)
                self.counts.anonymous += 1
        state.apply(ts=ts, type=type, channel=channel, value=value, category=category)
        self.counts.applied += 1

    def contact(self, *, ts: float, customer_id: str, channel: str, cost: float | None) -> None:
        """Count a message that went out at ``ts`` (a ``none`` contact changes nothing)."""
        if channel == _NONE:
            return
        self.customers[customer_id].apply_contact(
            ts=ts, channel=channel, cost=contact_cost(channel, cost), fatigue=self.fatigue
        )

    def _identify(self, anonymous_id: str, customer_id: str, state: CustomerState) -> None:
        if self.links.get(anonymous_id) == customer_id:
            return
        visitor = self.visitors.get(anonymous_id)
        if visitor is not None:
            state.merge(visitor)
        # the visitor's history now lives in the customer's state: never merge it twice
        self.visitors[anonymous_id] = None
        self.links[anonymous_id] = customer_id
        self.touched_visitors.add(anonymous_id)
        self.counts.merged += 1
