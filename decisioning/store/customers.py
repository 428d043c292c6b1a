"""Customer and visitor states in the store: reading, locking for update, writing back."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from decisioning.customer_view import CustomerState, to_ts
from decisioning.errors import InvalidInput
from decisioning.fatigue import FatigueSettings
from decisioning.records import Customer
from decisioning.store.engine import RawJSON, StoreBase, chunks, encode
from decisioning.store.replay import Profile, apply_profile
from decisioning.store.schema import anonymous, customers

#: the states of a page of customers (built once: a decision that misses the hot store runs it)
_STATES = sa.select(customers.c.customer_id, customers.c.state).where(
    customers.c.customer_id.in_(sa.bindparam("ids", expanding=True)),
    customers.c.state.is_not(None),
)

#: customers per write transaction in ``upsert_customers``
UPSERT_BATCH = 5000


def profile_of(customer: Customer) -> Profile:
    """The profile part of a customer record, as the state keeps it."""
    try:
        signup = to_ts(customer.signup_at)
    except ValueError as exc:
        raise InvalidInput(f"customer {customer.customer_id!r}: signup_at {exc}") from None
    return Profile(
        customer_id=customer.customer_id,
        signup_at=signup,
        timezone=customer.timezone,
        consents={str(c): bool(v) for c, v in customer.consents.items()},
        attributes=dict(customer.attributes),
    )


@dataclass
class CustomerBook:
    """Customer states loaded for one write, the versions they were read at, their encodings."""

    states: dict[str, CustomerState] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    #: JSON of the states encoded ahead of the write transaction
    encoded: dict[str, RawJSON] = field(default_factory=dict)

    def encode(self) -> None:
        self.encoded = {cid: encode(state.to_dict()) for cid, state in self.states.items()}


@dataclass
class VisitorBook:
    """Visitor states (``None``: none or merged), their links and the versions read."""

    states: dict[str, CustomerState | None] = field(default_factory=dict)
    links: dict[str, str | None] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    encoded: dict[str, RawJSON] = field(default_factory=dict)

    def encode(self, ids: Iterable[str]) -> None:
        self.encoded = {
            aid: encode(state.to_dict())
            for aid in ids
            if (state := self.states.get(aid)) is not None
        }


class CustomersMixin(StoreBase):
    """Customer records in, behavioural states out."""

    fatigue: FatigueSettings | None

    # -- public API ---------------------------------------------------------------------------

    def upsert_customers(self, records: Iterable[Customer]) -> int:
        """Create or update customers from their records; the number of records applied.

        A new customer starts from ``CustomerState.for_customer``; an existing state (a known
        customer, or a cold-start state created by earlier events) keeps its behaviour and takes
        the record's signup time, timezone, consents and attributes. Each batch of
        ``UPSERT_BATCH`` records is one transaction; a record given twice applies the last one.
        """
        latest: dict[str, Profile] = {}
        for record in records:
            if not record.customer_id:
                raise InvalidInput("customer record with an empty customer_id")
            latest[record.customer_id] = profile_of(record)
        profiles = list(latest.values())
        for part in chunks(profiles, UPSERT_BATCH):
            self.upsert_profiles(part)
        return len(profiles)

    def get_state(self, customer_id: str) -> CustomerState | None:
        """The customer's current state, or ``None`` for an id the store has never seen."""
        return self.get_states([customer_id]).get(customer_id)

    def get_states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState]:
        """The states of the ids the store knows (unknown ids are left out).

        A hot store serves them from memory (read through; see ``decisioning.store.hot``).
        The states returned are shared: read them, never change them.
        """
        cache = self.state_cache
        if cache is None:
            return self._load_states(customer_ids)
        got = cache.get_many(set(customer_ids), self._load_states)
        return {cid: state for cid, state in got.items() if state is not None}

    def _load_states(self, customer_ids: Iterable[str]) -> dict[str, CustomerState]:
        ids = sorted(set(customer_ids))
        found: dict[str, CustomerState] = {}
        with self._read() as conn:
            for part in chunks(ids):
                for cid, data in conn.execute(_STATES, {"ids": part}):
                    found[cid] = CustomerState.from_dict(data, self.fatigue)
        return found

    def get_visitor(self, anonymous_id: str) -> tuple[CustomerState | None, str | None]:
        """A visitor's own state (``None`` once merged) and the customer it is linked to."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(anonymous.c.state, anonymous.c.customer_id).where(
                    anonymous.c.anonymous_id == anonymous_id
                )
            ).first()
        if row is None:
            return None, None
        state = CustomerState.from_dict(row.state, self.fatigue) if row.state else None
        return state, row.customer_id

    def count_customers(self, *, known_only: bool = False) -> int:
        """How many customers have a state (``known_only``: leave cold-start states out)."""
        with self._read() as conn:
            stmt = sa.select(sa.func.count()).select_from(customers)
            stmt = stmt.where(customers.c.state.is_not(None))
            if known_only:
                stmt = stmt.where(customers.c.known.is_(True))
            return int(conn.execute(stmt).scalar_one())

    def iter_customer_ids(self, *, page: int = 10_000) -> Iterator[str]:
        """Every customer id with a state, in ascending order, read page by page."""
        after: str | None = None
        while True:
            stmt = (
                sa.select(customers.c.customer_id)
                .where(customers.c.state.is_not(None))
                .order_by(customers.c.customer_id)
                .limit(page)
            )
            if after is not None:
                stmt = stmt.where(customers.c.customer_id > after)
            with self._read() as conn:
                ids = list(conn.execute(stmt).scalars())
            yield from ids
            if len(ids) < page:
                return
            after = ids[-1]

    # -- building blocks for ingestion ----------------------------------------------------------

    def upsert_profiles(self, profiles: Sequence[Profile]) -> None:
        """Apply customer profiles in one write transaction."""
        with self._write() as conn:
            book = self._read_customers(conn, [p.customer_id for p in profiles], cold=False)
            for p in profiles:
                book.states[p.customer_id] = apply_profile(
                    book.states.get(p.customer_id), p, self.fatigue
                )
            self._save_customers(conn, book)

    def _read_customers(
        self, conn: Connection, ids: Iterable[str], *, cold: bool = True, lock: bool = True
    ) -> CustomerBook:
        """Load (and lock) customer states; missing ones start cold (``cold=False``: left out)."""
        wanted = set(ids)
        rows = self._lock(
            conn, customers, wanted, customers.c.state, customers.c.version, lock=lock
        )
        book = CustomerBook()
        for cid in wanted:
            row = rows.get(cid)
            book.versions[cid] = row.version if row is not None else 0
            if row is not None and row.state is not None:
                book.states[cid] = CustomerState.from_dict(row.state, self.fatigue)
            elif cold:
                book.states[cid] = CustomerState(cid, fatigue=self.fatigue)
        return book

    def _read_visitors(
        self, conn: Connection, ids: Iterable[str], *, lock: bool = True
    ) -> VisitorBook:
        """Load (and lock) visitor states and links (``None``: no state / not linked)."""
        wanted = set(ids)
        rows = self._lock(
            conn,
            anonymous,
            wanted,
            anonymous.c.state,
            anonymous.c.customer_id,
            anonymous.c.version,
            lock=lock,
        )
        book = VisitorBook(states=dict.fromkeys(wanted), links=dict.fromkeys(wanted))
        for aid in wanted:
            row = rows.get(aid)
            book.versions[aid] = row.version if row is not None else 0
            if row is not None:
                if row.state:
                    book.states[aid] = CustomerState.from_dict(row.state, self.fatigue)
                book.links[aid] = row.customer_id
        return book

    def _versions_unchanged(
        self, conn: Connection, table: sa.Table, versions: Mapping[str, int]
    ) -> bool:
        """Lock the rows and tell whether each is still at the version it was read at."""
        rows = self._lock(conn, table, versions, table.c.version)
        return all(
            (rows[key].version if key in rows else 0) == version
            for key, version in versions.items()
        )

    def _save_customers(self, conn: Connection, book: CustomerBook) -> None:
        self._touch(conn, book.states)
        now = datetime.now(UTC)
        rows = [
            {
                "customer_id": cid,
                "state": book.encoded.get(cid) or state.to_dict(),
                "known": bool(state.known),
                "version": book.versions.get(cid, 0) + 1,
                "updated_at": now,
            }
            for cid, state in book.states.items()
        ]
        stmt = self._upsert(customers, "state", "known", "version", "updated_at")
        for part in chunks(rows, 5000):
            conn.execute(stmt, list(part))

    def _save_visitors(self, conn: Connection, book: VisitorBook, ids: Iterable[str]) -> None:
        now = datetime.now(UTC)
        rows = []
        for aid in ids:
            state = book.states.get(aid)
            rows.append(
                {
                    "anonymous_id": aid,
                    "state": book.encoded.get(aid) or (state and state.to_dict()),
                    "customer_id": book.links.get(aid),
                    "version": book.versions.get(aid, 0) + 1,
                    "updated_at": now,
                }
            )
        stmt = self._upsert(anonymous, "state", "customer_id", "version", "updated_at")
        for part in chunks(rows, 5000):
            conn.execute(stmt, list(part))
