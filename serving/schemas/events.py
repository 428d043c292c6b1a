"""Event and contact-report bodies: what the orchestrator and the tracking pipeline send."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import Field, model_validator

from decisioning.channels import Channel
from decisioning.records import Event, EventType
from decisioning.store import IngestResult
from serving.schemas.common import MAX_AMOUNT, Id, Line, Moment, RequestModel, ResponseModel


class EventIn(RequestModel):
    """Something a customer did, or that happened to a message."""

    event_id: Id = Field(description="unique id: an event sent twice is applied once")
    customer_id: Id | None = Field(default=None, description="empty for an anonymous event")
    anonymous_id: Id | None = Field(default=None, description="the visitor, when not signed in")
    ts: Moment = Field(description="when it happened (with a timezone)")
    type: EventType
    channel: Channel | None = Field(default=None, description="the channel it concerns, if any")
    contact_id: Id | None = None
    value: float | None = Field(
        default=None, ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="e.g. the purchase amount"
    )
    category: Line | None = None

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not self.customer_id and not self.anonymous_id:
            raise ValueError("an event needs a customer_id or an anonymous_id")
        return self

    def to_record(self) -> Event:
        return Event(
            event_id=self.event_id,
            customer_id=self.customer_id or "",
            ts=self.ts,
            type=self.type,
            channel=self.channel,
            contact_id=self.contact_id,
            value=self.value,
            category=self.category,
            anonymous_id=self.anonymous_id,
        )


class IngestPublic(ResponseModel):
    """What a batch of events did to the customers' states."""

    received: int = Field(description="events in the request")
    applied: int = Field(description="new events folded into a customer's (or visitor's) state")
    duplicates: int = Field(description="events whose id was seen before (nothing changed)")
    anonymous: int = Field(description="applied to a visitor not yet linked to a customer")
    merged: int = Field(description="identify events that linked a visitor to a customer")

    @classmethod
    def of(cls, result: IngestResult, received: int) -> IngestPublic:
        return cls(
            received=received,
            applied=result.applied,
            duplicates=result.duplicates,
            anonymous=result.anonymous,
            merged=result.merged,
        )


ContactStatus = Literal["sent", "delivered", "suppressed", "failed"]


class ContactReport(RequestModel):
    """What the orchestrator did with a scheduled decision."""

    decision_id: Id
    status: ContactStatus = Field(
        description="sent or delivered: the message went out (it counts on caps and fatigue at "
        "once); suppressed or failed: it did not"
    )
    at: Moment | None = Field(default=None, description="when; default: now")


class ContactPublic(ResponseModel):
    """The decision's delivery status after the report."""

    decision_id: str
    customer_id: str
    status: str
    status_at: datetime
    counted: bool = Field(
        description="whether this report added the contact to the customer's view (False when "
        "nothing went out, or it was counted by an earlier report)"
    )
