"""The store's tables: one schema for SQLite and PostgreSQL, timestamps always UTC-aware."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: every state a logged decision can be in
DECISION_STATUSES = (
    "scheduled",
    "sent",
    "delivered",
    "suppressed",
    "failed",
    "cancelled",
    "expired",
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An instant stored in UTC and read back timezone-aware on both databases.

    SQLite keeps no zone, so values are written as naive UTC text (which sorts in time order);
    PostgreSQL keeps ``timestamptz``. Epoch seconds are accepted on the way in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value, UTC)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime or epoch seconds, got {value!r}")
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value.isoformat()} has no timezone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json() -> sa.JSON:
    # SQL NULL (not JSON null) for a missing document: a row locked before its state exists
    return sa.JSON(none_as_null=True)


metadata = sa.MetaData()

#: one behavioural state per customer; ``state`` is CustomerState.to_dict(), ``version`` counts
#: its writes (a writer that computed a state from version v may store it only over version v)
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.String, primary_key=True),
    sa.Column("state", _json()),
    sa.Column("known", sa.Boolean),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime),
)

#: every event applied, as received: its id makes ingestion idempotent (an event seen twice
#: changes nothing), and attribution and training read the behaviour back from it.
#: ``customer_id`` is the resolved customer: the event's own, else the customer its visitor is
#: linked to (NULL until an identify event links the visitor); ``from_visitor`` marks events
#: that named only a visitor, so the history can be exported exactly as it was received.
events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("customer_id", sa.String),
    sa.Column("anonymous_id", sa.String),
    sa.Column("from_visitor", sa.Boolean, nullable=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("channel", sa.String),
    sa.Column("contact_id", sa.String),
    sa.Column("value", sa.Float),
    sa.Column("category", sa.String),
)
sa.Index("ix_events_customer_time", events.c.customer_id, events.c.ts)
sa.Index("ix_events_type_time", events.c.type, events.c.ts)
# only the events of visitors no identify event has linked yet: the rows an identify resolves
sa.Index(
    "ix_events_unlinked_visitor",
    events.c.anonymous_id,
    sqlite_where=events.c.customer_id.is_(None),
    postgresql_where=events.c.customer_id.is_(None),
)

#: visitors known only by an anonymous id; ``customer_id`` once an identify event linked them
anonymous = sa.Table(
    "anonymous",
    metadata,
    sa.Column("anonymous_id", sa.String, primary_key=True),
    sa.Column("state", _json()),
    sa.Column("customer_id", sa.String, nullable=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime),
)

#: messages sent (or decided against, channel ``none``); the contact id makes ingestion idempotent
contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("contact_id", sa.String, primary_key=True),
    sa.Column("customer_id", sa.String, nullable=False, index=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("slot", sa.String, nullable=False),
    sa.Column("send_at", UTCDateTime),
    sa.Column("objective", sa.String, index=True),
    sa.Column("cost", sa.Float),
    sa.Column("propensity", sa.Float),
    sa.Column("decision_id", sa.String),
    sa.Column("category", sa.String),
    sa.Column("status", sa.String, nullable=False),
)

#: objective documents; a version row never changes except for its lifecycle status
objectives = sa.Table(
    "objectives",
    metadata,
    sa.Column("objective_id", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("doc", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

#: the decision log: what was decided, with what was needed to learn from it, and what followed
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.String, primary_key=True),
    sa.Column("customer_id", sa.String, nullable=False),
    sa.Column("objective_id", sa.String),
    sa.Column("objective_version", sa.Integer),
    sa.Column("decided_at", UTCDateTime, nullable=False),
    sa.Column("send_at", UTCDateTime),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("slot", sa.String),
    sa.Column("propensity", sa.Float, nullable=False),
    sa.Column("expected_value", sa.Float),
    sa.Column("model_version", sa.String, nullable=False),
    sa.Column("holdout", sa.Boolean, nullable=False),
    sa.Column("fallback", sa.Boolean, nullable=False),
    sa.Column("doc", _json(), nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("status_at", UTCDateTime, nullable=False),
    sa.Column("reward", sa.Float),
    sa.Column("reward_source", sa.String),
    sa.Column("rewarded_at", UTCDateTime),
    sa.Index("ix_decisions_customer_status", "customer_id", "status"),
    sa.Index("ix_decisions_objective_time", "objective_id", "decided_at"),
    sa.Index("ix_decisions_time", "decided_at", "decision_id"),
    sa.Index("ix_decisions_status_send", "status", "send_at"),
)

#: the action spaces decisions were taken over, each kept once: a log row names its own by key
action_spaces = sa.Table(
    "action_spaces",
    metadata,
    sa.Column("space_id", sa.String, primary_key=True),
    sa.Column("actions", _json(), nullable=False),
)

#: money spent per objective and budget period (e.g. ``2024-05`` or ``2024-05-01``)
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("objective_id", sa.String, primary_key=True),
    sa.Column("period_key", sa.String, primary_key=True),
    sa.Column("spent", sa.Float, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
