"""The real-time view of one customer: behavioural state updated one event at a time.

The same ``CustomerState.apply_*`` methods serve real-time ingestion (the store loads a state,
applies the event and saves it) and offline training (the dataset builder replays history in
time order), so a decision at time t sees exactly what happened before t on both paths.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from decisioning.actions import zone
from decisioning.channels import CONSENT_CHANNELS, CONTACT_CHANNELS, OWNED_CHANNELS, Channel
from decisioning.errors import InvalidInput
from decisioning.fatigue import DAY, DecayedCount, FatigueSettings
from decisioning.records import Contact, Customer, Event, EventType

#: the longest window any counter or guardrail looks back over
WINDOW_30D = 30 * DAY
_ACTIVITY_TAU = 7 * DAY / 0.6931471805599453  # activity counts halve in a week
_ENGAGEMENT = frozenset(
    {EventType.OPEN, EventType.CLICK, EventType.PURCHASE, EventType.APP_OPEN, EventType.WEB_VISIT}
)
_CHANNEL_NAMES = tuple(c.value for c in CONTACT_CHANNELS)
_OWNED_NAMES = frozenset(c.value for c in OWNED_CHANNELS)


def to_ts(moment: datetime) -> float:
    """Epoch seconds of an aware datetime (the state keeps plain floats: it is replayed a lot)."""
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no timezone")
    return moment.timestamp()


class ChannelStats:
    """What happened on one channel: contacts, opens, clicks and their recency."""

    __slots__ = ("contacts", "opens", "clicks", "last_contact", "last_open", "last_click", "recent")

    def __init__(self) -> None:
        self.contacts = 0
        self.opens = 0
        self.clicks = 0
        self.last_contact: float | None = None
        self.last_open: float | None = None
        self.last_click: float | None = None
        self.recent: deque[float] = deque()  # contact times within the last 30 days

    def count_since(self, since: float) -> int:
        return sum(1 for t in self.recent if t > since)

    def to_dict(self) -> dict[str, Any]:
        return {
            "contacts": self.contacts,
            "opens": self.opens,
            "clicks": self.clicks,
            "last_contact": self.last_contact,
            "last_open": self.last_open,
            "last_click": self.last_click,
            "recent": list(self.recent),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelStats:
        stats = cls()
        stats.contacts, stats.opens, stats.clicks = data["contacts"], data["opens"], data["clicks"]
        stats.last_contact, stats.last_open = data["last_contact"], data["last_open"]
        stats.last_click, stats.recent = data["last_click"], deque(data["recent"])
        return stats


class CustomerState:
    """Everything the service remembers about one customer, as of the last event applied."""

    __slots__ = (
        "customer_id", "signup_at", "timezone", "consents", "attributes", "channels",
        "purchases", "monetary", "last_purchase", "recent_purchases", "open_tickets",
        "last_ticket_change", "complaints", "last_complaint", "unsubscribes", "cancelled",
        "last_event",
        "last_owned_contact", "last_owned_response", "pressure", "activity", "hour_counts",
        "weekday_counts", "app_opens", "web_visits", "spend", "known",
    )  # fmt: skip

    def __init__(
        self,
        customer_id: str,
        *,
        signup_at: float | None = None,
        timezone: str = "UTC",
        consents: Mapping[str, bool] | None = None,
        attributes: Mapping[str, Any] | None = None,
        fatigue: FatigueSettings | None = None,
    ) -> None:
        self.customer_id = customer_id
        self.signup_at = signup_at
        self.timezone = timezone
        self.consents: dict[str, bool] = {c.value: False for c in CONSENT_CHANNELS}
        self.consents.update(consents or {})
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.channels: dict[str, ChannelStats] = {c: ChannelStats() for c in _CHANNEL_NAMES}
        self.purchases = 0
        self.monetary = 0.0
        self.last_purchase: float | None = None
        self.recent_purchases: deque[tuple[float, str]] = deque()  # (ts, category), 30 days
        self.open_tickets = 0
        self.last_ticket_change: float | None = None
        self.complaints = 0
        self.last_complaint: float | None = None  # paid media and revalidation look at its age
        self.unsubscribes = 0
        self.cancelled = False
        self.last_event: float | None = None
        self.last_owned_contact: float | None = None
        self.last_owned_response: float | None = None
        tau = (fatigue or FatigueSettings()).tau
        self.pressure = DecayedCount(tau)
        self.activity = DecayedCount(_ACTIVITY_TAU)
        self.hour_counts = [0] * 24
        self.weekday_counts = [0] * 7
        self.app_opens = 0
        self.web_visits = 0
        self.spend = 0.0
        self.known = signup_at is not None  # False for a cold-start (unknown) customer

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def for_customer(
        cls, customer: Customer, fatigue: FatigueSettings | None = None
    ) -> CustomerState:
        return cls(
            customer.customer_id,
            signup_at=to_ts(customer.signup_at),
            timezone=customer.timezone,
            consents={c.value: bool(v) for c, v in customer.consents.items()},
            attributes=customer.attributes,
            fatigue=fatigue,
        )

    # -- updates ------------------------------------------------------------------------------

    def apply_event(self, event: Event) -> None:
        """Fold one event into the state."""
        self.apply(
            ts=to_ts(event.ts),
            type=event.type,
            channel=event.channel.value if event.channel else None,
            value=event.value,
            category=event.category,
        )

    def apply(
        self,
        *,
        ts: float,
        type: EventType | str,
        channel: str | None = None,
        value: float | None = None,
        category: str | None = None,
    ) -> None:
        """Fold one event given as plain fields (the fast path for bulk replay)."""
        kind = EventType(type)
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"event value must be a finite number, got {value!r}")
        self._touch(ts)
        stats = self.channels.get(channel) if channel else None
        if kind in _ENGAGEMENT:
            self._engaged(ts)
        if kind is EventType.OPEN:
            if stats is not None:
                stats.opens += 1
                stats.last_open = _latest(stats.last_open, ts)
            if channel in _OWNED_NAMES:
                self.last_owned_response = _latest(self.last_owned_response, ts)
        elif kind is EventType.CLICK:
            if stats is not None:
                stats.clicks += 1
                stats.last_click = _latest(stats.last_click, ts)
            if channel in _OWNED_NAMES:
                self.last_owned_response = _latest(self.last_owned_response, ts)
        elif kind is EventType.PURCHASE:
            self.purchases += 1
            monetary = self.monetary + float(value or 0.0)
            if not math.isfinite(monetary):
                raise InvalidInput(f"purchase value {value!r} makes the customer's total overflow")
            self.monetary = monetary
            self.last_purchase = _latest(self.last_purchase, ts)
            self.recent_purchases.append((ts, category or ""))
        elif kind is EventType.UNSUBSCRIBE:
            self.unsubscribes += 1
            for name in [channel] if channel in self.consents else list(self.consents):
                self.consents[name] = False  # type: ignore[index]
        elif kind is EventType.SUBSCRIBE:
            if channel in self.consents:
                self.consents[channel] = True  # type: ignore[index]
        elif kind is EventType.COMPLAINT:
            self.complaints += 1
            self.last_complaint = _latest(self.last_complaint, ts)
        elif kind is EventType.SUPPORT_TICKET_OPENED:
            self.open_tickets += 1
            self.last_ticket_change = _latest(self.last_ticket_change, ts)
        elif kind is EventType.SUPPORT_TICKET_CLOSED:
            self.open_tickets = max(0, self.open_tickets - 1)
            self.last_ticket_change = _latest(self.last_ticket_change, ts)
        elif kind is EventType.APP_OPEN:
            self.app_opens += 1
        elif kind is EventType.WEB_VISIT:
            self.web_visits += 1
        elif kind is EventType.CANCEL:
            self.cancelled = True
        self._forget_before(ts - WINDOW_30D)

    def apply_contact(
        self,
        *,
        ts: float,
        channel: str,
        cost: float = 0.0,
        fatigue: FatigueSettings | None = None,
    ) -> None:
        """Count a message that went out at ``ts`` (doing nothing changes nothing)."""
        if channel == Channel.NONE.value:
            return
        stats = self.channels[channel]
        stats.contacts += 1
        stats.last_contact = _latest(stats.last_contact, ts)
        stats.recent.append(ts)
        if channel in _OWNED_NAMES:
            self.last_owned_contact = _latest(self.last_owned_contact, ts)
        weights = (fatigue or _DEFAULT_FATIGUE).channel_weights
        self.pressure.add(ts, weights.get(Channel(channel), 1.0))
        self.spend += cost
        self._touch(ts)
        self._forget_before(ts - WINDOW_30D)

    def apply_contact_record(
        self, contact: Contact, fatigue: FatigueSettings | None = None
    ) -> None:
        self.apply_contact(
            ts=to_ts(contact.sent_at),
            channel=contact.channel.value,
            cost=contact.cost or 0.0,
            fatigue=fatigue,
        )

    def merge(self, other: CustomerState) -> None:
        """Fold an anonymous visitor's state into this one (after an ``identify`` event)."""
        for name, theirs in other.channels.items():
            ours = self.channels[name]
            ours.contacts += theirs.contacts
            ours.opens += theirs.opens
            ours.clicks += theirs.clicks
            ours.last_contact = _latest(ours.last_contact, theirs.last_contact)
            ours.last_open = _latest(ours.last_open, theirs.last_open)
            ours.last_click = _latest(ours.last_click, theirs.last_click)
            ours.recent = deque(sorted([*ours.recent, *theirs.recent]))
        self.purchases += other.purchases
        self.monetary += other.monetary
        self.last_purchase = _latest(self.last_purchase, other.last_purchase)
        self.recent_purchases = deque(sorted([*self.recent_purchases, *other.recent_purchases]))
        self.app_opens += other.app_opens
        self.web_visits += other.web_visits
        self.complaints += other.complaints
        self.last_complaint = _latest(self.last_complaint, other.last_complaint)
        self.hour_counts = [a + b for a, b in zip(self.hour_counts, other.hour_counts, strict=True)]
        self.weekday_counts = [
            a + b for a, b in zip(self.weekday_counts, other.weekday_counts, strict=True)
        ]
        if other.activity.value:
            self.activity.add(other.activity.ref, other.activity.value)
        if other.pressure.value:
            self.pressure.add(other.pressure.ref, other.pressure.value)
        self.last_event = _latest(self.last_event, other.last_event)

    # -- reading ------------------------------------------------------------------------------

    def contacts_since(self, since: float, channel: str | None = None) -> int:
        if channel is not None:
            return self.channels[channel].count_since(since)
        return sum(s.count_since(since) for s in self.channels.values())

    def bought_since(self, since: float, category: str | None = None) -> bool:
        return any(
            t > since and (category is None or c == category) for t, c in self.recent_purchases
        )

    def local_hour(self, ts: float) -> int:
        return datetime.fromtimestamp(ts, zone(self.timezone)).hour

    # -- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "signup_at": self.signup_at,
            "timezone": self.timezone,
            "consents": dict(self.consents),
            "attributes": dict(self.attributes),
            "channels": {k: v.to_dict() for k, v in self.channels.items()},
            "purchases": self.purchases,
            "monetary": self.monetary,
            "last_purchase": self.last_purchase,
            "recent_purchases": [list(p) for p in self.recent_purchases],
            "open_tickets": self.open_tickets,
            "last_ticket_change": self.last_ticket_change,
            "complaints": self.complaints,
            "last_complaint": self.last_complaint,
            "unsubscribes": self.unsubscribes,
            "cancelled": self.cancelled,
            "last_event": self.last_event,
            "last_owned_contact": self.last_owned_contact,
            "last_owned_response": self.last_owned_response,
            "pressure": self.pressure.to_list(),
            "activity": self.activity.to_list(),
            "hour_counts": list(self.hour_counts),
            "weekday_counts": list(self.weekday_counts),
            "app_opens": self.app_opens,
            "web_visits": self.web_visits,
            "spend": self.spend,
            "known": self.known,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], fatigue: FatigueSettings | None = None
    ) -> CustomerState:
        state = cls(
            data["customer_id"],
            signup_at=data["signup_at"],
            timezone=data["timezone"],
            consents=data["consents"],
            attributes=data["attributes"],
            fatigue=fatigue,
        )
        state.channels = {k: ChannelStats.from_dict(v) for k, v in data["channels"].items()}
        for name in (
            "purchases", "monetary", "last_purchase", "open_tickets", "last_ticket_change",
            "complaints", "unsubscribes", "cancelled", "last_event", "last_owned_contact",
            "last_owned_response", "app_opens", "web_visits", "spend", "known",
        ):  # fmt: skip
            setattr(state, name, data[name])
        state.last_complaint = data.get("last_complaint")  # absent in states saved before it
        state.recent_purchases = deque((t, c) for t, c in data["recent_purchases"])
        state.pressure = DecayedCount(state.pressure.tau, *data["pressure"])
        state.activity = DecayedCount(_ACTIVITY_TAU, *data["activity"])
        state.hour_counts = list(data["hour_counts"])
        state.weekday_counts = list(data["weekday_counts"])
        return state

    # -- internals ----------------------------------------------------------------------------

    def _touch(self, ts: float) -> None:
        self.last_event = _latest(self.last_event, ts)

    def _engaged(self, ts: float) -> None:
        self.activity.add(ts)
        local = datetime.fromtimestamp(ts, zone(self.timezone))
        self.hour_counts[local.hour] += 1
        self.weekday_counts[local.weekday()] += 1

    def _forget_before(self, horizon: float) -> None:
        for stats in self.channels.values():
            recent = stats.recent
            while recent and recent[0] <= horizon:
                recent.popleft()
        while self.recent_purchases and self.recent_purchases[0][0] <= horizon:
            self.recent_purchases.popleft()


_DEFAULT_FATIGUE = FatigueSettings()


def _latest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return a if a >= b else b
