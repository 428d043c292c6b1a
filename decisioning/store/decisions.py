"""The decision log: every decision with its distribution, what became of it, and its reward."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from decisioning.actions import Action
from decisioning.decision import Decision
from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.store.engine import StoreBase, chunks, dumps
from decisioning.store.ingest import stored_time
from decisioning.store.log_document import (
    actions_of,
    alternatives_of,
    blocked_of,
    eligible_of,
    finite,
    log_document,
    space_key,
)
from decisioning.store.log_writer import DecisionLogWriter
from decisioning.store.schema import DECISION_STATUSES, action_spaces, contacts, decisions

Moment = datetime | float
#: a scheduled send: the decision's id and its send time (epoch seconds)
Send = tuple[str, float]


def _epoch(moment: Moment) -> float:
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _with_send(item: Send, sends: tuple[Send, ...] | None) -> tuple[Send, ...]:
    return (*(sends or ()), item)


#: which status a decision may move to from each status (a terminal status allows none)
TRANSITIONS: dict[str, frozenset[str]] = {
    "scheduled": frozenset({"sent", "delivered", "suppressed", "failed", "cancelled", "expired"}),
    "sent": frozenset({"delivered", "failed"}),
    "delivered": frozenset(),
    "suppressed": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "expired": frozenset(),
}


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as logged, with its delivery status and (once known) its reward."""

    decision: Decision
    status: str
    status_at: datetime
    reward: float | None = None
    reward_source: str | None = None
    rewarded_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DecisionCount:
    """How many decisions took one action, in or out of the holdout, per status."""

    action: str
    channel: str
    holdout: bool
    status: str
    count: int
    rewarded: int
    reward_sum: float


@dataclass(frozen=True, slots=True)
class ChannelSpend:
    """Contacts sent on a channel and what they cost (missing costs count as zero)."""

    channel: str
    contacts: int
    cost: float


def default_status(decision: Decision) -> str:
    """``scheduled`` for a contact to send; ``suppressed`` when nothing goes out."""
    return "scheduled" if decision.is_contact and not decision.holdout else "suppressed"


def _values(decision: Decision, status: str, now: datetime) -> tuple[Any, ...]:
    """What a new log row holds, in the order of ``_LOGGED_FIELDS``."""
    if status not in TRANSITIONS:
        raise InvalidInput(f"decision {decision.decision_id!r}: unknown status {status!r}")
    action = decision.action
    return (
        decision.decision_id,
        decision.customer_id,
        decision.objective_id,
        decision.objective_version,
        decision.decided_at,
        decision.send_at,
        action.key,
        action.channel.value,
        None if action.is_nothing else action.slot.value,
        float(decision.propensity),
        finite(decision.expected_value),
        decision.model_version,
        bool(decision.holdout),
        bool(decision.fallback),
        log_document(decision),
        status,
        now,
    )


def _row(decision: Decision, status: str, now: datetime) -> dict[str, Any]:
    """A new log row by column name (the insert through SQLAlchemy)."""
    return dict(zip(_LOGGED_FIELDS, _values(decision, status, now), strict=True))


#: the columns a new log row fills (:func:`_row`), and their insert through the SQLite driver
_LOGGED_FIELDS: tuple[str, ...] = (
    "decision_id", "customer_id", "objective_id", "objective_version", "decided_at", "send_at",
    "action", "channel", "slot", "propensity", "expected_value", "model_version", "holdout",
    "fallback", "doc", "status", "status_at",
)  # fmt: skip
_INSERT_LOGGED = (
    f"INSERT OR IGNORE INTO {decisions.name} ({', '.join(_LOGGED_FIELDS)}) "
    f"VALUES ({', '.join('?' * len(_LOGGED_FIELDS))})"
)


#: key of a queued row's driver-ready tuple (SQLite)
_DRIVER_ROW = "_driver_row"
#: a page of customers' scheduled sends (built once: a decision that misses the hot store runs it)
_SCHEDULED = sa.select(decisions.c.customer_id, decisions.c.decision_id, decisions.c.send_at).where(
    decisions.c.customer_id.in_(sa.bindparam("ids", expanding=True)),
    decisions.c.status == "scheduled",
    decisions.c.send_at.is_not(None),
)


def _driver_row(values: tuple[Any, ...], times: dict[datetime, str]) -> tuple[Any, ...]:
    """A log row's ``_values`` as the SQLite driver stores them (times as text, JSON encoded).

    ``times`` keeps the text of each time met: a chunk's decisions share their decision and
    status times.
    """
    out = list(values)
    for i in _TIME_POSITIONS:
        moment = out[i]
        if moment is not None:
            text = times.get(moment)
            if text is None:
                text = times[moment] = stored_time(moment)
            out[i] = text
    out[_DOC_POSITION] = dumps(out[_DOC_POSITION])
    return tuple(out)


def _queued(batch: Iterable[Decision], status: str | None, now: datetime) -> list[dict[str, Any]]:
    """What the SQLite log queue keeps of new rows: driver tuples and what pending sends read.

    Built straight from the decisions, without a row by column name: the documents' lists
    and dicts die at once instead of waiting in the queue, where the garbage collector would
    traverse them again and again.
    """
    times: dict[datetime, str] = {}
    out = []
    for decision in batch:
        row_status = status or default_status(decision)
        out.append(
            {
                "customer_id": decision.customer_id,
                "decision_id": decision.decision_id,
                "status": row_status,
                "send_at": decision.send_at,
                _DRIVER_ROW: _driver_row(_values(decision, row_status, now), times),
            }
        )
    return out


#: where :func:`_driver_row` finds the times and the document among ``_LOGGED_FIELDS``
_TIME_POSITIONS = tuple(
    i for i, k in enumerate(_LOGGED_FIELDS) if k in ("decided_at", "send_at", "status_at")
)
_DOC_POSITION = _LOGGED_FIELDS.index("doc")


def _logged(row: Any, space: Callable[[str], tuple[str, ...]]) -> LoggedDecision:
    doc = row.doc
    actions = actions_of(doc, space)
    decision = Decision(
        decision_id=row.decision_id,
        customer_id=row.customer_id,
        decided_at=row.decided_at,
        objective_id=row.objective_id,
        objective_version=row.objective_version,
        action=Action.from_key(row.action),
        send_at=row.send_at,
        propensity=row.propensity,
        model_version=row.model_version,
        actions=actions,
        distribution=tuple(doc["distribution"]),
        eligible=eligible_of(doc),
        expected_value=row.expected_value,
        alternatives=alternatives_of(doc),
        blocked=blocked_of(doc, actions),
        holdout=row.holdout,
        fallback=row.fallback,
        explanation=doc["explanation"],
        context=doc["context"],
    )
    return LoggedDecision(
        decision=decision,
        status=row.status,
        status_at=row.status_at,
        reward=row.reward,
        reward_source=row.reward_source,
        rewarded_at=row.rewarded_at,
    )


def _between(stmt: Any, column: Any, since: Moment | None, until: Moment | None) -> Any:
    if since is not None:
        stmt = stmt.where(column >= since)
    if until is not None:
        stmt = stmt.where(column < until)
    return stmt


class DecisionsMixin(StoreBase):
    """Logging decisions, following their delivery, attaching rewards, and counting them."""

    @property
    def log_writer(self) -> DecisionLogWriter:
        """The writer of deferred decision-log rows (``log_decisions(..., defer=True)``)."""
        writer: DecisionLogWriter | None = self.__dict__.get("_log_writer")
        if writer is None:
            process = self.insert_process
            new = DecisionLogWriter(
                self._insert_queued, release=process.close if process is not None else None
            )
            writer = self.__dict__.setdefault("_log_writer", new)
        return writer

    def flush_decisions(self) -> None:
        """Insert the decisions logged with ``defer=True`` that are still queued."""
        writer: DecisionLogWriter | None = self.__dict__.get("_log_writer")
        if writer is not None and writer.pending():
            writer.flush()

    def _insert_rows(self, rows: Sequence[dict[str, Any]]) -> int:
        with self._write() as conn:
            return len(self._insert_new(conn, decisions, rows))

    def _insert_queued(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows of the deferred log, keeping the writer's share of the GIL small.

        SQLite: straight through the driver's executemany (``INSERT OR IGNORE``, the times in
        stored form, the document encoded once): the writer thread runs beside the deciding
        threads, and per-row statement processing would take the interpreter from them. With
        an insert process (``log_process=True``), the process runs that insert instead.
        PostgreSQL: the ordinary insert.
        """
        if self.dialect != "sqlite":
            self._insert_rows(rows)
            return
        tuples = [r[_DRIVER_ROW] for r in rows]  # queued by log_decisions (_queued)
        if self.insert_process is not None:
            self.insert_process.insert(_INSERT_LOGGED, tuples)
            return
        with self._write() as conn:
            conn.exec_driver_sql(_INSERT_LOGGED, tuples)

    def log_decision(
        self, decision: Decision, *, status: str | None = None, defer: bool = False
    ) -> bool:
        """Log one decision; False if its id was logged already (the call changes nothing).

        With ``defer=True`` it is queued and inserted in the background (see
        :meth:`log_decisions`); the answer is then True.
        """
        return self.log_decisions([decision], status=status, defer=defer) == 1

    def log_decisions(
        self, batch: Iterable[Decision], *, status: str | None = None, defer: bool = False
    ) -> int:
        """Log decisions in one transaction; how many were new (known ids are skipped).

        The status is ``status`` if given, else :func:`default_status` of each decision.
        ``defer=True`` queues them for a background insert and returns at once (how many were
        queued): every read of the log flushes the queue first, and so does ``close``, so a
        deferred decision is never missed nor lost. Its scheduled send counts at once.
        """
        now = datetime.now(UTC)
        batch = batch if isinstance(batch, list | tuple) else list(batch)
        self._keep_spaces(batch)  # before the rows that name them
        rows: list[dict[str, Any]]
        if defer and self.dialect == "sqlite":
            # encoded here: the writer thread (or the insert process) then barely runs Python
            rows = _queued(batch, status, now)
        else:
            rows = [_row(d, status or default_status(d), now) for d in batch]
        if not rows:
            return 0
        if not defer:
            self.flush_decisions()  # keep the log in decision order
            inserted = self._insert_rows(rows)
        else:
            self.log_writer.submit(rows)
            inserted = len(rows)
        cache = self.pending_cache
        if cache is not None:
            for row in rows:
                if row["status"] == "scheduled" and row["send_at"] is not None:
                    item = (row["decision_id"], row["send_at"].timestamp())
                    cache.update(row["customer_id"], partial(_with_send, item))
        return inserted

    def _keep_spaces(self, batch: Sequence[Decision]) -> None:
        """Store the action spaces of ``batch`` not kept yet (a log row names its space).

        Each space is written once per store object (and once in the database: a space kept
        by another process is left as it is), committed before any row that names it.
        """
        kept = self._kept_spaces()
        new: dict[str, tuple[str, ...]] = {}
        for decision in batch:
            key = space_key(decision.actions)
            if key not in kept:
                new[key] = tuple(decision.actions)
        if not new:
            return
        rows = [{"space_id": key, "actions": list(actions)} for key, actions in new.items()]
        with self._write() as conn:
            if not kept:  # this store's first: the database may predate the table
                conn.execute(CreateTable(action_spaces, if_not_exists=True))
            self._insert_new(conn, action_spaces, rows)
        kept.update(new)

    def _kept_spaces(self) -> dict[str, tuple[str, ...]]:
        """The action spaces known to be in the database, by key (written or read here)."""
        kept: dict[str, tuple[str, ...]] = self.__dict__.setdefault("_spaces", {})
        return kept

    def action_space(self, key: str) -> tuple[str, ...]:
        """The action keys of the space kept under ``key`` (:func:`space_key`)."""
        kept = self._kept_spaces()
        actions = kept.get(key)
        if actions is None:
            with self._read() as conn:
                stored = conn.execute(
                    sa.select(action_spaces.c.actions).where(action_spaces.c.space_id == key)
                ).scalar_one_or_none()
            if stored is None:
                raise NotFound(f"action space {key!r} not found (a decision-log row names it)")
            actions = kept[key] = tuple(stored)
        return actions

    def get_decision(self, decision_id: str) -> LoggedDecision:
        """The logged decision with this id."""
        self.flush_decisions()
        with self._read() as conn:
            row = conn.execute(
                sa.select(decisions).where(decisions.c.decision_id == decision_id)
            ).first()
        if row is None:
            raise NotFound(f"decision {decision_id!r} not found")
        return _logged(row, self.action_space)

    def update_decision_status(
        self, decision_id: str, status: str, *, at: Moment | None = None
    ) -> LoggedDecision:
        """Move the decision to ``status`` along :data:`TRANSITIONS`; the updated decision.

        Setting the status it already has changes nothing; any other move not in
        ``TRANSITIONS`` (e.g. sending a cancelled decision) raises ``Conflict``.
        """
        if status not in TRANSITIONS:
            raise InvalidInput(
                f"decision {decision_id!r}: unknown status {status!r} "
                f"(expected one of: {', '.join(DECISION_STATUSES)})"
            )
        allowed_from = [s for s, targets in TRANSITIONS.items() if status in targets]
        self.flush_decisions()
        with self._write() as conn:
            done = conn.execute(
                sa.update(decisions)
                .where(decisions.c.decision_id == decision_id, decisions.c.status.in_(allowed_from))
                .values(status=status, status_at=at if at is not None else datetime.now(UTC))
            ).rowcount
            if not done:
                current = conn.execute(
                    sa.select(decisions.c.status).where(decisions.c.decision_id == decision_id)
                ).scalar_one_or_none()
                if current is None:
                    raise NotFound(f"decision {decision_id!r} not found")
                if current != status:
                    raise Conflict(f"decision {decision_id!r} is {current}, cannot become {status}")
        logged = self.get_decision(decision_id)
        self._forget_pending([logged.decision.customer_id])
        return logged

    def set_reward(
        self, decision_id: str, reward: float, source: str, *, at: Moment | None = None
    ) -> None:
        """Attach the decision's observed reward and where it came from (replaces any earlier)."""
        if math.isnan(reward) or math.isinf(reward):
            raise InvalidInput(f"decision {decision_id!r}: reward must be finite, got {reward}")
        self.flush_decisions()
        with self._write() as conn:
            done = conn.execute(
                sa.update(decisions)
                .where(decisions.c.decision_id == decision_id)
                .values(
                    reward=float(reward),
                    reward_source=source,
                    rewarded_at=at if at is not None else datetime.now(UTC),
                )
            ).rowcount
        if not done:
            raise NotFound(f"decision {decision_id!r} not found")

    def iter_decisions(
        self,
        objective_id: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
        *,
        page: int = 1000,
    ) -> Iterator[LoggedDecision]:
        """Logged decisions with ``since <= decided_at < until``, oldest first, page by page."""
        self.flush_decisions()
        after: tuple[datetime, str] | None = None
        while True:
            stmt = sa.select(decisions).order_by(decisions.c.decided_at, decisions.c.decision_id)
            stmt = _between(stmt, decisions.c.decided_at, since, until).limit(page)
            if objective_id is not None:
                stmt = stmt.where(decisions.c.objective_id == objective_id)
            if after is not None:
                when, last = after
                stmt = stmt.where(
                    sa.or_(
                        decisions.c.decided_at > when,
                        sa.and_(decisions.c.decided_at == when, decisions.c.decision_id > last),
                    )
                )
            with self._read() as conn:
                rows = conn.execute(stmt).all()
            for row in rows:
                yield _logged(row, self.action_space)
            if len(rows) < page:
                return
            after = (rows[-1].decided_at, rows[-1].decision_id)

    def pending_sends(self, customer_id: str, *, after: Moment | None = None) -> list[float]:
        """Send times (epoch seconds) of the customer's scheduled, not yet sent contacts."""
        return self.pending_sends_many([customer_id], after=after).get(customer_id, [])

    def pending_sends_many(
        self, customer_ids: Sequence[str], *, after: Moment | None = None
    ) -> dict[str, list[float]]:
        """:meth:`pending_sends` for many customers at once (customers with none left out).

        A hot store serves them from memory (read through; see ``decisioning.store.hot``).
        """
        cache = self.pending_cache
        if cache is None:
            self.flush_decisions()
            return self._load_pending(customer_ids, after=after)
        after_ts = None if after is None else _epoch(after)
        out: dict[str, list[float]] = {}
        for cid, sends in cache.get_many(set(customer_ids), self._load_pending_items).items():
            times = sorted(t for _, t in sends or () if after_ts is None or t > after_ts)
            if times:
                out[cid] = times
        return out

    def _load_pending_items(self, customer_ids: Sequence[str]) -> dict[str, tuple[Send, ...]]:
        """Scheduled sends (decision id, epoch seconds) from the log, queued rows included."""
        wanted = set(customer_ids)
        # the queue is read first: a row committed meanwhile is then in the database
        queued = [
            (r["customer_id"], (r["decision_id"], r["send_at"].timestamp()))
            for r in self.__dict__["_log_writer"].unflushed()
            if r["customer_id"] in wanted and r["status"] == "scheduled" and r["send_at"]
        ] if "_log_writer" in self.__dict__ else []  # fmt: skip
        found: dict[str, dict[str, float]] = {}
        with self._read() as conn:
            for part in chunks(sorted(wanted)):
                for cid, did, send_at in conn.execute(_SCHEDULED, {"ids": part}):
                    found.setdefault(cid, {})[did] = send_at.timestamp()
        for cid, (did, ts) in queued:
            found.setdefault(cid, {})[did] = ts
        return {cid: tuple(sends.items()) for cid, sends in found.items()}

    def _forget_pending(self, customer_ids: Iterable[str]) -> None:
        if self.pending_cache is not None:
            self.pending_cache.drop(customer_ids)

    def _load_pending(
        self, customer_ids: Sequence[str], *, after: Moment | None = None
    ) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        with self._read() as conn:
            for part in chunks(sorted(set(customer_ids))):
                stmt = (
                    sa.select(decisions.c.customer_id, decisions.c.send_at)
                    .where(
                        decisions.c.customer_id.in_(part),
                        decisions.c.status == "scheduled",
                        decisions.c.send_at.is_not(None),
                    )
                    .order_by(decisions.c.customer_id, decisions.c.send_at)
                )
                if after is not None:
                    stmt = stmt.where(decisions.c.send_at > after)
                for cid, send_at in conn.execute(stmt):
                    out.setdefault(cid, []).append(send_at.timestamp())
        return out

    def due_decisions(self, until: Moment, *, limit: int = 1000) -> list[LoggedDecision]:
        """Scheduled decisions whose send time has come (``send_at <= until``), earliest first."""
        self.flush_decisions()
        stmt = (
            sa.select(decisions)
            .where(decisions.c.status == "scheduled", decisions.c.send_at <= until)
            .order_by(decisions.c.send_at, decisions.c.decision_id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_logged(row, self.action_space) for row in conn.execute(stmt)]

    def decision_counts(
        self,
        objective_id: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
    ) -> list[DecisionCount]:
        """Decisions grouped by action, holdout and status, with their rewards, for reports."""
        self.flush_decisions()
        d = decisions.c
        keys = (d.action, d.channel, d.holdout, d.status)
        stmt = sa.select(
            *keys,
            sa.func.count().label("n"),
            sa.func.count(d.reward).label("rewarded"),
            sa.func.coalesce(sa.func.sum(d.reward), 0.0).label("reward_sum"),
        ).group_by(*keys)
        stmt = _between(stmt, d.decided_at, since, until).order_by(*keys)
        if objective_id is not None:
            stmt = stmt.where(d.objective_id == objective_id)
        with self._read() as conn:
            return [
                DecisionCount(
                    r.action, r.channel, bool(r.holdout), r.status, r.n, r.rewarded, r.reward_sum
                )
                for r in conn.execute(stmt)
            ]

    def spend_by_channel(
        self,
        objective_id: str | None = None,
        since: Moment | None = None,
        until: Moment | None = None,
    ) -> list[ChannelSpend]:
        """Contacts stored per channel (``none`` excluded) and their total logged cost."""
        c = contacts.c
        stmt = (
            sa.select(
                c.channel,
                sa.func.count().label("n"),
                sa.func.coalesce(sa.func.sum(c.cost), 0.0).label("cost"),
            )
            .where(c.channel != "none")
            .group_by(c.channel)
            .order_by(c.channel)
        )
        stmt = _between(stmt, c.ts, since, until)
        if objective_id is not None:
            stmt = stmt.where(c.objective == objective_id)
        with self._read() as conn:
            return [ChannelSpend(r.channel, r.n, float(r.cost)) for r in conn.execute(stmt)]
