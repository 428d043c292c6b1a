"""Real-time ingestion: batches of events and contacts folded into the stored states.

One batch is one write transaction: its new events are stored in the ``events`` table (an id
stored before is skipped, so replaying a batch changes nothing), every state it touches is
locked, the events are applied in time order in memory, and the states are written back with
one executemany. Stored events carry their resolved customer: the events of a visitor are
linked to the customer once an identify event links the visitor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from decisioning.channels import Channel
from decisioning.customer_view import to_ts
from decisioning.errors import InvalidInput
from decisioning.records import Contact, Event, EventType
from decisioning.store.customers import CustomerBook, VisitorBook
from decisioning.store.engine import chunks
from decisioning.store.history import HistoryMixin
from decisioning.store.replay import Replay, ReplayCounts
from decisioning.store.schema import anonymous, contacts, customers
from decisioning.store.schema import events as events_table

_NONE = Channel.NONE.value
_IDENTIFY = EventType.IDENTIFY


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What a batch of events did.

    ``applied`` new events were folded into a state (``applied + duplicates`` is the batch
    size); ``anonymous`` of them went to a visitor no identify event had linked yet; ``merged``
    identify events linked a visitor to a customer (merging the visitor's state into it).
    """

    applied: int = 0
    duplicates: int = 0
    anonymous: int = 0
    merged: int = 0

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            self.applied + other.applied,
            self.duplicates + other.duplicates,
            self.anonymous + other.anonymous,
            self.merged + other.merged,
        )


@dataclass(frozen=True, slots=True)
class ContactsResult:
    """What a batch of contacts did: ``applied`` new ones stored, ``duplicates`` skipped."""

    applied: int = 0
    duplicates: int = 0


def _event_fields(event: Event) -> dict[str, Any]:
    if not event.event_id:
        raise InvalidInput("event with an empty event_id")
    if not event.customer_id and not event.anonymous_id:
        raise InvalidInput(f"event {event.event_id!r}: needs a customer_id or an anonymous_id")
    try:
        ts = to_ts(event.ts)
    except ValueError as exc:
        raise InvalidInput(f"event {event.event_id!r}: ts {exc}") from None
    return {
        "ts": ts,
        "type": EventType(event.type).value,
        "customer_id": event.customer_id or None,
        "anonymous_id": event.anonymous_id or None,
        "channel": event.channel.value if event.channel else None,
        "value": event.value,
        "category": event.category,
    }


def event_row(event: Event, fields: dict[str, Any]) -> dict[str, Any]:
    """The events-table row of an event (``fields`` from :func:`_event_fields`), unresolved.

    An event naming only a visitor gets its customer from :func:`resolve_visitors`.
    """
    value = fields["value"]
    return {
        "event_id": event.event_id,
        "customer_id": fields["customer_id"],
        "anonymous_id": fields["anonymous_id"],
        "from_visitor": fields["customer_id"] is None,
        "ts": event.ts,
        "type": fields["type"],
        "channel": fields["channel"],
        "contact_id": event.contact_id or None,
        "value": None if value is None or math.isnan(value) else value,
        "category": fields["category"],
    }


#: the events table's columns, in order: the fields of a row given to ``_insert_events``
EVENT_FIELDS: tuple[str, ...] = tuple(c.name for c in events_table.columns)
_INSERT_EVENT = (
    f"INSERT INTO {events_table.name} ({', '.join(EVENT_FIELDS)}) "
    f"VALUES ({', '.join('?' * len(EVENT_FIELDS))})"
)


def stored_time(moment: datetime) -> str:
    """The text SQLite keeps for an instant: naive UTC, microseconds always written.

    The format of :class:`~decisioning.store.schema.UTCDateTime` on SQLite (SQLAlchemy's
    ``DATETIME`` storage format), so that rows written by the driver directly compare and read
    back like any other.
    """
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(" ", "microseconds")


def resolve_visitors(rows: Iterable[dict[str, Any]], links: Mapping[str, str | None]) -> None:
    """Give each row that named only a visitor the customer the visitor is linked to (or None)."""
    for row in rows:
        if row["from_visitor"]:
            row["customer_id"] = links.get(row["anonymous_id"])


def contact_row(contact: Contact) -> dict[str, Any]:
    """The contacts-table row of a contact record (checked for the fields the store needs)."""
    if not contact.contact_id or not contact.customer_id:
        raise InvalidInput(f"contact {contact.contact_id!r}: empty contact_id or customer_id")
    for name in ("ts", "send_at"):
        moment = getattr(contact, name)
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"contact {contact.contact_id!r}: {name} has no timezone")
    return {
        "contact_id": contact.contact_id,
        "customer_id": contact.customer_id,
        "ts": contact.ts,
        "channel": Channel(contact.channel).value,
        "slot": str(contact.slot),
        "send_at": contact.send_at,
        "objective": contact.objective,
        "cost": contact.cost,
        "propensity": contact.propensity,
        "decision_id": contact.decision_id,
        "category": contact.category,
        "status": "sent",
    }


@dataclass
class _Prepared:
    """States folded for one batch of events, and what they were computed from."""

    fresh: set[str]
    visitor_ids: set[str]
    visitors: VisitorBook
    customers: CustomerBook
    counts: ReplayCounts


class IngestMixin(HistoryMixin):
    """Events and contacts in, states updated, exactly once."""

    def ingest_events(self, events: Sequence[Event]) -> IngestResult:
        """Apply a batch of events, idempotently by ``event_id``, in one write transaction.

        Events of a customer the store does not know create a cold-start state
        (``CustomerState(customer_id)``, ``known=False``) that a later customer record
        completes. Anonymous events go to the visitor's state until an identify event merges
        it into the customer's; see :mod:`decisioning.store.replay` for the routing rules.
        Within the batch, events are applied in time order (stable for equal times).

        The states are first read and folded outside the write transaction, so that several
        processes do this work in parallel; under the write lock the batch's ids and the
        versions of the states are checked, and the batch is folded again from the locked
        rows if anything changed in between. Either way no update is ever lost.
        """
        fields: dict[str, dict[str, Any]] = {}
        stored: dict[str, dict[str, Any]] = {}
        for event in events:
            if event.event_id not in fields:
                row = _event_fields(event)
                fields[event.event_id] = row
                stored[event.event_id] = event_row(event, row)
        if not fields:
            return IngestResult(duplicates=len(events))
        with self._read() as conn:
            seen = self._existing(conn, events_table, fields)
            if len(seen) == len(fields):  # ids are never forgotten: nothing can change
                return IngestResult(duplicates=len(events))
            plan = self._prepare(conn, fields, set(fields) - seen, lock=False)
        plan.customers.encode()
        plan.visitors.encode(plan.visitor_ids)
        resolve_visitors(stored.values(), plan.visitors.links)
        with self._write() as conn:
            # the events table comes first in the lock order (it holds the batch's ids)
            fresh = self._insert_events(conn, self._event_tuples(stored.values()))
            # visitors before customers: the global lock order
            if not (
                fresh == plan.fresh
                and self._versions_unchanged(conn, anonymous, plan.visitors.versions)
                and self._versions_unchanged(conn, customers, plan.customers.versions)
            ):
                plan = self._prepare(conn, fields, fresh, lock=True)
                self._relink_stored(conn, [stored[i] for i in fresh], plan.visitors.links)
            self._save_visitors(conn, plan.visitors, plan.visitor_ids)
            self._save_customers(conn, plan.customers)
            self._link_visitor_events(conn, plan.visitors.links, plan.visitor_ids)
        counts = plan.counts
        return IngestResult(
            applied=counts.applied,
            duplicates=len(events) - counts.applied,
            anonymous=counts.anonymous,
            merged=counts.merged,
        )

    def ingest_contacts(self, records: Sequence[Contact]) -> ContactsResult:
        """Store a batch of contacts, idempotently by ``contact_id``, in one transaction.

        Each new contact on a real channel counts on the customer's state at the time it went
        out (``send_at``, else ``ts``), with its logged cost or else the channel's default
        cost; ``none`` contacts are stored and change no state.
        """
        rows: dict[str, dict[str, Any]] = {}
        for record in records:
            rows.setdefault(record.contact_id, contact_row(record))
        if not rows:
            return ContactsResult()
        with self._write() as conn:
            fresh_ids = self._insert_new(conn, contacts, list(rows.values()))
            sends = sorted(
                (rows[i] for i in fresh_ids if rows[i]["channel"] != _NONE),
                key=lambda row: to_ts(row["send_at"] or row["ts"]),
            )
            book = self._read_customers(conn, {row["customer_id"] for row in sends})
            replay = Replay(customers=book.states, visitors={}, links={}, fatigue=self.fatigue)
            for row in sends:
                replay.contact(
                    ts=to_ts(row["send_at"] or row["ts"]),
                    customer_id=row["customer_id"],
                    channel=row["channel"],
                    cost=row["cost"],
                )
            self._save_customers(conn, book)
        return ContactsResult(applied=len(fresh_ids), duplicates=len(records) - len(fresh_ids))

    def _event_tuples(self, rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Event rows as ``EVENT_FIELDS`` tuples, times as SQLite stores them on SQLite."""
        text = self.dialect == "sqlite"
        return [
            tuple(stored_time(row[n]) if text and n == "ts" else row[n] for n in EVENT_FIELDS)
            for row in rows
        ]

    def _insert_events(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        """Store the event rows (``EVENT_FIELDS`` tuples) whose id is new; those ids.

        SQLite: the write transaction holds the database's write lock, so the new ids are
        found first and their rows go through the driver's executemany as they are (the times
        already in stored form): per-row statement processing would cost a third of a history
        load. PostgreSQL: ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` in ascending id order,
        which also waits correctly on a concurrent writer of the same id.
        """
        if self.dialect != "sqlite":
            records = [dict(zip(EVENT_FIELDS, row, strict=True)) for row in rows]
            return self._insert_new(conn, events_table, records)
        stored = self._existing(conn, events_table, [row[0] for row in rows])
        fresh = [row for row in rows if row[0] not in stored]
        if fresh:
            conn.exec_driver_sql(_INSERT_EVENT, fresh)
        return {row[0] for row in fresh}

    def _relink_stored(
        self, conn: Connection, rows: Sequence[dict[str, Any]], links: Mapping[str, str | None]
    ) -> None:
        """Correct the customer of rows stored from links that changed before the lock was held."""
        changed = [
            {"key": row["event_id"], "linked": links.get(row["anonymous_id"])}
            for row in rows
            if row["from_visitor"] and row["customer_id"] != links.get(row["anonymous_id"])
        ]
        if changed:
            conn.execute(
                sa.update(events_table)
                .where(events_table.c.event_id == sa.bindparam("key"))
                .values(customer_id=sa.bindparam("linked")),
                changed,
            )

    def _link_visitor_events(
        self, conn: Connection, links: Mapping[str, str | None], visitor_ids: Iterable[str]
    ) -> None:
        """Give the stored, still unresolved events of each linked visitor its customer.

        Runs after every batch that reached a visitor: an identify event links the visitor, and
        its earlier events (stored without a customer) now belong to the customer. The partial
        index on unresolved visitor events keeps each probe cheap.
        """
        pairs = [
            {"visitor": aid, "linked": linked}
            for aid in sorted(visitor_ids)
            if (linked := links.get(aid)) is not None
        ]
        if pairs:
            conn.execute(
                sa.update(events_table)
                .where(
                    events_table.c.anonymous_id == sa.bindparam("visitor"),
                    events_table.c.customer_id.is_(None),
                )
                .values(customer_id=sa.bindparam("linked")),
                pairs,
            )

    def _existing(self, conn: Connection, table: sa.Table, keys: Iterable[str]) -> set[str]:
        (key,) = table.primary_key.columns
        found: set[str] = set()
        for part in chunks(sorted(keys)):
            found.update(conn.execute(sa.select(key).where(key.in_(part))).scalars())
        return found

    def _prepare(
        self, conn: Connection, fields: dict[str, dict[str, Any]], fresh: set[str], *, lock: bool
    ) -> _Prepared:
        """Load the states the new events reach (locking them if ``lock``) and fold the events."""
        rows = sorted((fields[i] for i in fields if i in fresh), key=lambda row: row["ts"])
        visitor_ids = {
            r["anonymous_id"]
            for r in rows
            if r["anonymous_id"] and (not r["customer_id"] or r["type"] == _IDENTIFY)
        }
        visitors = self._read_visitors(conn, visitor_ids, lock=lock)
        customer_ids = {r["customer_id"] for r in rows if r["customer_id"]}
        customer_ids.update(
            linked
            for r in rows
            if not r["customer_id"] and (linked := visitors.links.get(r["anonymous_id"]))
        )
        book = self._read_customers(conn, customer_ids, lock=lock)
        replay = Replay(
            customers=book.states, visitors=visitors.states, links=visitors.links,
            fatigue=self.fatigue,
        )  # fmt: skip
        for row in rows:
            replay.event(**row)
        return _Prepared(set(fresh), visitor_ids, visitors, book, replay.counts)
