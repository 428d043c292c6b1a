"""Typed records of the history data contract: customers, contacts and events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from decisioning.actions import Slot
from decisioning.channels import Channel


class EventType(StrEnum):
    """What a customer did, or what happened to a message."""

    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    PURCHASE = "purchase"
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    SUPPORT_TICKET_OPENED = "support_ticket_opened"
    SUPPORT_TICKET_CLOSED = "support_ticket_closed"
    APP_OPEN = "app_open"
    WEB_VISIT = "web_visit"
    CANCEL = "cancel"
    IDENTIFY = "identify"
    #: the consent for ``channel`` is given (again)
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class Customer:
    """A known customer: when they signed up, where they live, what they consent to."""

    customer_id: str
    signup_at: datetime
    timezone: str = "UTC"
    consents: dict[Channel, bool] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened, at ``ts`` (UTC-aware).

    ``customer_id`` may be empty for an anonymous event, then ``anonymous_id`` names the visitor;
    an ``identify`` event carries both and links them.
    """

    event_id: str
    customer_id: str
    ts: datetime
    type: EventType
    channel: Channel | None = None
    contact_id: str | None = None
    value: float | None = None
    category: str | None = None
    anonymous_id: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A decision that was taken and, unless ``channel`` is ``none``, a message sent.

    ``ts`` is when the decision was taken; ``send_at`` when the message went (or goes) out.
    ``propensity`` is the probability the logging policy gave this action, when known.
    """

    contact_id: str
    customer_id: str
    ts: datetime
    channel: Channel
    slot: Slot = Slot.NOW
    send_at: datetime | None = None
    objective: str | None = None
    cost: float | None = None
    propensity: float | None = None
    decision_id: str | None = None
    category: str | None = None

    @property
    def sent_at(self) -> datetime:
        return self.send_at or self.ts
