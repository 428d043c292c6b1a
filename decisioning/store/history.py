"""Reading the stored behaviour back: events, contacts, the decision log and customer profiles.

What attribution and training need from the store, as records or as columnar frames in the
history data contract (:mod:`decisioning.history`): the events as received, the contacts sent,
the decision log joined with what became of each decision, and the profile of every known
customer. Rewards are written back here in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from decisioning.channels import Channel
from decisioning.errors import InvalidInput
from decisioning.history_parse import TEXT_DTYPE, TIMESTAMP_DTYPE
from decisioning.history_tables import CONTACT_COLUMNS, EVENT_COLUMNS
from decisioning.records import Event, EventType
from decisioning.store.customers import CustomersMixin
from decisioning.store.engine import chunks
from decisioning.store.replay import Profile
from decisioning.store.schema import contacts, customers, decisions, events

Moment = datetime | float

#: columns of :meth:`HistoryMixin.decisions_frame`
DECISION_COLUMNS: tuple[str, ...] = (
    "decision_id", "customer_id", "objective_id", "objective_version", "decided_at", "send_at",
    "action", "channel", "slot", "propensity", "model_version", "holdout", "fallback", "status",
    "status_at", "reward", "reward_source", "sent_at", "sent_cost", "sent_category",
)  # fmt: skip
#: statuses of a contact decision whose message went out
SENT_STATUSES: tuple[str, ...] = ("sent", "delivered")

_EVENT_SELECT = (
    events.c.event_id, events.c.customer_id, events.c.ts, events.c.type, events.c.channel,
    events.c.contact_id, events.c.value, events.c.category, events.c.anonymous_id,
    events.c.from_visitor,
)  # fmt: skip


def _between(stmt: Any, column: Any, since: Moment | None, until: Moment | None) -> Any:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt


def _type_names(types: Iterable[EventType | str] | None) -> list[str] | None:
    if types is None:
        return None
    try:
        return sorted({EventType(t).value for t in types})
    except ValueError as exc:
        raise InvalidInput(f"events query: {exc}") from None


def _text(values: Sequence[Any]) -> pd.Series:
    return pd.Series(["" if v is None else str(v) for v in values], dtype=TEXT_DTYPE)


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


class HistoryMixin(CustomersMixin):
    """Events, contacts, decisions and profiles read back for attribution and training."""

    # -- timestamps read in bulk ----------------------------------------------------------------

    def _raw_time(self, column: Any) -> Any:
        # SQLite keeps naive UTC text: parsing it in one vectorised call beats a datetime per row
        if self.dialect == "sqlite":
            return sa.type_coerce(column, sa.String).label(column.name)
        return column

    def _times(self, values: Sequence[Any]) -> pd.Series:
        if self.dialect == "sqlite":
            parsed = pd.to_datetime(
                pd.Series(values, dtype=object), format="%Y-%m-%d %H:%M:%S.%f", utc=True
            )
        else:
            parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        return parsed.astype(TIMESTAMP_DTYPE).reset_index(drop=True)

    # -- events ---------------------------------------------------------------------------------

    def _events_stmt(
        self,
        columns: Sequence[Any],
        since: Moment | None,
        until: Moment | None,
        types: list[str] | None,
        part: Sequence[str] | None,
    ) -> Any:
        stmt = _between(sa.select(*columns), events.c.ts, since, until)
        if types is not None:
            stmt = stmt.where(events.c.type.in_(types))
        if part is not None:
            stmt = stmt.where(events.c.customer_id.in_(part))
        return stmt

    def iter_events(
        self,
        since: Moment | None = None,
        until: Moment | None = None,
        *,
        types: Iterable[EventType | str] | None = None,
        customer_ids: Iterable[str] | None = None,
        page: int = 5000,
    ) -> Iterator[Event]:
        """Stored events with ``since <= ts < until``, oldest first (ties by id), as records.

        ``customer_id`` is the resolved customer (``""`` for a visitor no identify event has
        linked yet); ``customer_ids`` selects by it. Without ``customer_ids`` the rows stream
        from one query (one read transaction: a consistent snapshot) ``page`` at a time.
        """
        names = _type_names(types)
        if customer_ids is None:
            stmt = self._events_stmt(_EVENT_SELECT, since, until, names, None)
            stmt = stmt.order_by(events.c.ts, events.c.event_id)
            with self._read() as conn:
                result = conn.execution_options(stream_results=True, yield_per=page).execute(stmt)
                for row in result:
                    yield _event_record(row)
            return
        rows: list[Any] = []
        with self._read() as conn:
            for part in chunks(sorted(set(customer_ids))):
                rows.extend(
                    conn.execute(self._events_stmt(_EVENT_SELECT, since, until, names, part))
                )
        rows.sort(key=lambda r: (r.ts, r.event_id))
        for row in rows:
            yield _event_record(row)

    def events_frame(
        self,
        since: Moment | None = None,
        until: Moment | None = None,
        *,
        types: Iterable[EventType | str] | None = None,
        customer_ids: Iterable[str] | None = None,
        as_received: bool = False,
    ) -> pd.DataFrame:
        """Stored events as the data contract's events table, oldest first (ties by id).

        ``customer_id`` is the resolved customer (``""`` for a visitor not linked yet). With
        ``as_received``, it is what the service itself knew when each event arrived: ``""`` for
        a visitor's events before the identify event that linked the visitor (the service kept
        them in the visitor's state and merged them at the identify), as a history file of the
        same stream would hold them.
        """
        names = _type_names(types)
        columns = [*_EVENT_SELECT]
        columns[2] = self._raw_time(events.c.ts)
        rows: list[Any] = []
        with self._read() as conn:
            if customer_ids is None:
                rows.extend(conn.execute(self._events_stmt(columns, since, until, names, None)))
            else:
                for part in chunks(sorted(set(customer_ids))):
                    rows.extend(conn.execute(self._events_stmt(columns, since, until, names, part)))
            cols = _columns(rows, len(columns))
            frame = pd.DataFrame(
                {
                    "event_id": _text(cols[0]),
                    "customer_id": _text(cols[1]),
                    "ts": self._times(cols[2]),
                    "type": _text(cols[3]),
                    "channel": _text(cols[4]),
                    "contact_id": _text(cols[5]),
                    "value": _floats(cols[6]),
                    "category": _text(cols[7]),
                    "anonymous_id": _text(cols[8]),
                }
            )
            if as_received and rows:
                visitor = np.array([bool(v) for v in cols[9]], dtype=bool)
                frame.loc[self._before_link(conn, frame, visitor), "customer_id"] = ""
        frame = frame.sort_values(["ts", "event_id"], kind="stable", ignore_index=True)
        return frame[list(EVENT_COLUMNS)]

    def _before_link(
        self, conn: sa.Connection, frame: pd.DataFrame, visitor: np.ndarray
    ) -> np.ndarray:
        """Which visitor events came before the identify event linking them to their customer."""
        ids = sorted(set(frame["anonymous_id"].to_numpy()[visitor].tolist()) - {""})
        found: list[Any] = []
        for part in chunks(ids):
            stmt = sa.select(
                events.c.anonymous_id, events.c.customer_id, self._raw_time(events.c.ts)
            ).where(events.c.type == EventType.IDENTIFY.value, events.c.anonymous_id.in_(part))
            found.extend(conn.execute(stmt))
        linked_at: dict[tuple[str, str], pd.Timestamp] = {}
        if found:
            aid, cid, ts = zip(*found, strict=True)
            for key, moment in zip(zip(aid, cid, strict=True), self._times(ts), strict=True):
                if key not in linked_at or moment < linked_at[key]:
                    linked_at[key] = moment
        keys = zip(frame["anonymous_id"].tolist(), frame["customer_id"].tolist(), strict=True)
        link = pd.Series([linked_at.get(k, pd.NaT) for k in keys], dtype=TIMESTAMP_DTYPE)
        # no identify on record (or not linked at all): the event stayed with the visitor
        return visitor & ~(frame["ts"] >= link).to_numpy(dtype=bool)

    # -- contacts and decisions -----------------------------------------------------------------

    def contacts_frame(
        self,
        since: Moment | None = None,
        until: Moment | None = None,
        *,
        outside_log: bool = False,
    ) -> pd.DataFrame:
        """Stored contacts with ``since <= ts < until`` as the contract's contacts table.

        A contact stored without ``send_at`` went out at its ``ts``, as the contract says.

        ``outside_log`` keeps only the contacts that are not a logged decision (neither their
        ``contact_id`` nor their ``decision_id`` is in the decision log): those of a history.
        """
        self.flush_decisions()
        c = contacts.c
        columns = [c[name] for name in CONTACT_COLUMNS]
        columns[2], columns[5] = self._raw_time(c.ts), self._raw_time(c.send_at)
        stmt = _between(sa.select(*columns), c.ts, since, until)
        if outside_log:
            for key in (c.contact_id, c.decision_id):
                logged = sa.select(decisions.c.decision_id).where(decisions.c.decision_id == key)
                stmt = stmt.where(~logged.exists())
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        cols = _columns(rows, len(columns))
        frame = pd.DataFrame(
            {
                name: (
                    self._times(values)
                    if name in ("ts", "send_at")
                    else _floats(values)
                    if name in ("cost", "propensity")
                    else _text(values)
                )
                for name, values in zip(CONTACT_COLUMNS, cols, strict=True)
            }
        )
        frame["send_at"] = frame["send_at"].fillna(frame["ts"])  # the contract's default
        return frame.sort_values(["ts", "contact_id"], kind="stable", ignore_index=True)

    def decisions_frame(
        self,
        objective_id: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        *,
        pending_rewards: bool = False,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """The decision log with ``since <= decided_at < until``, oldest first, one row each.

        Columns :data:`DECISION_COLUMNS`: the logged decision, its status and reward, and from
        the contacts table what was actually sent (``sent_at``, ``sent_cost``,
        ``sent_category``; empty when nothing went out). ``pending_rewards`` keeps the decisions
        that can be rewarded and have no reward yet: do-nothing ones, and contacts whose status
        says the message went out. ``after`` (decided_at, decision_id) and ``limit`` page.
        """
        self.flush_decisions()
        d, c = decisions.c, contacts.c
        columns = [
            d.decision_id, d.customer_id, d.objective_id, d.objective_version,
            self._raw_time(d.decided_at), self._raw_time(d.send_at), d.action, d.channel, d.slot,
            d.propensity, d.model_version, d.holdout, d.fallback, d.status,
            self._raw_time(d.status_at), d.reward, d.reward_source,
            self._raw_time(c.send_at).label("sent_at"), c.cost.label("sent_cost"),
            c.category.label("sent_category"),
        ]  # fmt: skip
        stmt = (
            sa.select(*columns)
            .select_from(decisions.outerjoin(contacts, c.contact_id == d.decision_id))
            .order_by(d.decided_at, d.decision_id)
        )
        stmt = _between(stmt, d.decided_at, since, until)
        if objective_id is not None:
            stmt = stmt.where(d.objective_id == objective_id)
        if pending_rewards:
            stmt = stmt.where(
                d.reward.is_(None),
                sa.or_(d.channel == Channel.NONE.value, d.status.in_(SENT_STATUSES)),
            )
        if after is not None:
            when, last = after
            stmt = stmt.where(
                sa.or_(d.decided_at > when, sa.and_(d.decided_at == when, d.decision_id > last))
            )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        cols = _columns(rows, len(columns))
        data: dict[str, Any] = dict(zip(DECISION_COLUMNS, cols, strict=True))
        for name in ("decided_at", "send_at", "status_at", "sent_at"):
            data[name] = self._times(data[name])
        for name in ("propensity", "reward", "sent_cost"):
            data[name] = _floats(data[name])
        for name in ("holdout", "fallback"):
            data[name] = np.array([bool(v) for v in data[name]], dtype=bool)
        data["objective_version"] = pd.array(data["objective_version"], dtype="Int64")
        for name in ("decision_id", "customer_id", "objective_id", "action", "channel", "slot"):
            data[name] = _text(data[name])
        for name in ("model_version", "status", "reward_source", "sent_category"):
            data[name] = _text(data[name])
        return pd.DataFrame(data)[list(DECISION_COLUMNS)]

    def set_rewards(
        self, rewards: Mapping[str, float], *, source: str, at: Moment | None = None
    ) -> list[str]:
        """Attach rewards to decisions that have none yet, in one transaction; the ids rewarded.

        A decision rewarded in the meantime (an explicit reward reported while attribution
        ran) keeps its reward: this never overwrites one.
        """
        self.flush_decisions()
        bad = [k for k, v in rewards.items() if not np.isfinite(v)]
        if bad:
            raise InvalidInput(f"decision {bad[0]!r}: reward must be finite, got {rewards[bad[0]]}")
        when = at if at is not None else datetime.now(UTC)
        d = decisions.c
        done: list[str] = []
        with self._write() as conn:
            for part in chunks(sorted(rewards)):
                stmt = (
                    sa.select(d.decision_id)
                    .where(d.decision_id.in_(part), d.reward.is_(None))
                    .order_by(d.decision_id)
                    .with_for_update()
                )
                done.extend(conn.execute(stmt).scalars())
            if done:
                conn.execute(
                    sa.update(decisions)
                    .where(d.decision_id == sa.bindparam("key"))
                    .values(reward=sa.bindparam("amount"), reward_source=source, rewarded_at=when),
                    [{"key": k, "amount": float(rewards[k])} for k in done],
                )
        return done

    # -- customers ------------------------------------------------------------------------------

    def iter_profiles(self, *, known_only: bool = True, page: int = 5000) -> Iterator[Profile]:
        """The profile (signup, timezone, current consents, attributes) of each stored customer.

        ``known_only`` leaves out cold-start states no customer record has completed.
        """
        after: str | None = None
        while True:
            stmt = (
                sa.select(customers.c.customer_id, customers.c.state)
                .where(customers.c.state.is_not(None))
                .order_by(customers.c.customer_id)
                .limit(page)
            )
            if known_only:
                stmt = stmt.where(customers.c.known.is_(True))
            if after is not None:
                stmt = stmt.where(customers.c.customer_id > after)
            with self._read() as conn:
                rows = conn.execute(stmt).all()
            for cid, state in rows:
                yield Profile(
                    customer_id=cid,
                    signup_at=state.get("signup_at"),
                    timezone=state.get("timezone") or "UTC",
                    consents=dict(state.get("consents") or {}),
                    attributes=dict(state.get("attributes") or {}),
                )
            if len(rows) < page:
                return
            after = rows[-1][0]


def _columns(rows: Sequence[Any], width: int) -> list[tuple[Any, ...]]:
    """Rows as ``width`` columns (empty ones when there are no rows)."""
    if not rows:
        return [() for _ in range(width)]
    return list(zip(*rows, strict=True))


def _event_record(row: Any) -> Event:
    return Event(
        event_id=row.event_id,
        customer_id=row.customer_id or "",
        ts=row.ts,
        type=EventType(row.type),
        channel=Channel(row.channel) if row.channel else None,
        contact_id=row.contact_id,
        value=row.value,
        category=row.category,
        anonymous_id=row.anonymous_id,
    )
