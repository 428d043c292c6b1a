"""The database connection behind the store: SQLite (WAL) or PostgreSQL through one code path.

Write transactions never lose an update:

* SQLite runs in WAL mode and every write transaction starts with ``BEGIN IMMEDIATE``, so writers
  (threads or processes) queue on the database's write lock, waiting up to ``busy_timeout``;
  readers start a deferred transaction and never wait for writers.
* PostgreSQL locks the rows it rewrites with ``SELECT ... FOR UPDATE``, always in ascending key
  order and always in the same table order (events, contacts, visitors, customers), so two
  transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from decisioning.errors import InvalidInput
from decisioning.store.hot import ReadThrough
from decisioning.store.log_process import InsertProcess, sqlite_pragmas

try:  # optional speed-up: the state JSON is decoded and encoded for every ingested event
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

#: execution option that makes a SQLite transaction a deferred (read) one
_READ_ONLY = "decisioning_read_only"
#: connection info key: customers written by the current write transaction
_TOUCHED = "decisioning_touched"
#: rows per statement when a list of keys goes into an IN (...) clause
KEY_CHUNK = 1000
#: engine option: seconds a SQLite writer waits for the write lock (``make_engine``)
BUSY_TIMEOUT = "decisioning_busy_timeout"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):  # numpy arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} value {value!r} cannot be stored as JSON")


class RawJSON(str):
    """JSON text encoded ahead of time (outside a write transaction): stored as it is."""

    __slots__ = ()


if orjson is not None:
    _ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _encode(value: Any) -> str:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS).decode()

    loads: Callable[[str | bytes], Any] = orjson.loads

else:

    def _encode(value: Any) -> str:
        # NaN and infinities are refused: PostgreSQL rejects them
        return json.dumps(
            value, default=_json_default, allow_nan=False, ensure_ascii=False, separators=(",", ":")
        )

    loads = json.loads


def dumps(value: Any) -> str:
    """JSON text of a document (orjson when installed: states are written for every batch)."""
    return value if isinstance(value, RawJSON) else _encode(value)


def encode(value: Any) -> RawJSON:
    """The document encoded now, to be stored later without encoding it again."""
    return RawJSON(_encode(value))


#: which JSON library the store uses (orjson when installed: about 5x faster on states)
JSON_LIBRARY = "orjson" if orjson is not None else "json"


def normalise_url(url: str) -> sa.URL:
    """The SQLAlchemy URL, with PostgreSQL pointed at the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InvalidInput(f"database URL {url!r} is not a valid SQLAlchemy URL") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidInput(
            f"database URL {parsed.render_as_string(hide_password=True)!r}: "
            "only sqlite:/// and postgresql+psycopg:// are supported"
        )
    return parsed


def sqlite_file(url: sa.URL) -> str | None:
    """The path of a SQLite database file; None for an in-memory or a non-SQLite database."""
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if url.get_backend_name() != "sqlite" or memory:
        return None
    return str(Path(database).expanduser().resolve())


def make_engine(url: str, *, busy_timeout: float = 60.0, echo: bool = False) -> Engine:
    """An engine for ``url`` with the transaction behaviour described in this module.

    ``busy_timeout`` is how long (seconds) a SQLite writer waits for the write lock.
    An in-memory SQLite URL (``sqlite://``) gives one shared connection: for one thread only.
    """
    parsed = normalise_url(url)
    options: dict[str, Any] = {"echo": echo, "json_serializer": dumps, "json_deserializer": loads}
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, **options)
    path = sqlite_file(parsed)
    if path is None:
        options["poolclass"] = StaticPool
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        execution_options={BUSY_TIMEOUT: busy_timeout},
        **options,
    )
    pragmas = sqlite_pragmas(busy_timeout, file=path is not None)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # take transaction control away from the sqlite3 module: we emit BEGIN ourselves
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")

    return engine


def chunks(items: Sequence[Any], size: int = KEY_CHUNK) -> Iterator[Sequence[Any]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class StoreBase:
    """Connections, dialect-specific statements and row locking shared by the store's parts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        #: in-process customer states and scheduled sends (``hot=True``), see ``store.hot``
        self.state_cache: ReadThrough[Any] | None = None
        self.pending_cache: ReadThrough[Any] | None = None
        #: inserts the deferred decision log from a helper process (``log_process=True``)
        self.insert_process: InsertProcess | None = None

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (SQLite: ``BEGIN IMMEDIATE``), committed on success.

        Customers whose state the transaction wrote (:meth:`_touch`) leave the in-process
        cache again once it has ended: a read that raced with it does not stay cached.
        """
        touched: list[str] = []
        try:
            with self.engine.begin() as conn:
                conn.info[_TOUCHED] = touched
                yield conn
                conn.info.pop(_TOUCHED, None)
        finally:
            if touched and self.state_cache is not None:
                self.state_cache.drop(touched)

    def flush_decisions(self) -> None:
        """Insert the queued decision-log rows (the decision log's part of the store does)."""

    def _touch(self, conn: Connection, customer_ids: Iterable[str]) -> None:
        """Mark customers' states as written in this transaction (dropped from the cache)."""
        if self.state_cache is None:
            return
        ids = list(customer_ids)
        self.state_cache.drop(ids)
        touched = conn.info.get(_TOUCHED)
        if touched is not None:
            touched.extend(ids)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only connection (SQLite: deferred transaction, never waits for writers)."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_READ_ONLY: True})
            yield conn

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing``/``do_update`` on this database."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _insert_new(
        self, conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]
    ) -> set[str]:
        """Insert the rows whose key is not there yet; the keys actually inserted.

        Rows are inserted in ascending key order: on PostgreSQL a key being inserted by another
        transaction makes this one wait, and the order keeps such waits free of cycles.
        """
        (key,) = table.primary_key.columns
        ordered = sorted(rows, key=lambda row: row[key.name])
        stmt = self._insert(table).on_conflict_do_nothing(index_elements=[key]).returning(key)
        inserted: set[str] = set()
        for part in chunks(ordered, 5000):
            inserted.update(conn.execute(stmt, list(part)).scalars())
        return inserted

    def _lock(
        self,
        conn: Connection,
        table: sa.Table,
        keys: Iterable[str],
        *columns: sa.Column[Any],
        lock: bool = True,
    ) -> dict[str, sa.Row[Any]]:
        """Lock the rows of ``keys`` for the rest of the transaction; the existing ones by key.

        SQLite: the write transaction already holds the database's write lock, so this only
        reads. PostgreSQL: missing rows are first inserted empty (so that a key nobody has
        written yet can be locked too), then the rows are read ``FOR UPDATE``; both steps go
        in ascending key order. Returns the rows with the given ``columns`` (default: all);
        on PostgreSQL, rows inserted here have their column defaults. ``lock=False`` only
        reads (outside a write transaction, to prepare work checked later under the lock).
        """
        (key,) = table.primary_key.columns
        ordered = sorted(set(keys))
        if not ordered:
            return {}
        if lock and self.dialect == "postgresql":
            placeholder = self._insert(table).on_conflict_do_nothing(index_elements=[key])
            for part in chunks(ordered):
                conn.execute(placeholder, [{key.name: k} for k in part])
        selected = columns or tuple(table.columns)
        found: dict[str, sa.Row[Any]] = {}
        for part in chunks(ordered):
            stmt = (
                sa.select(key, *[c for c in selected if c is not key])
                .where(key.in_(part))
                .order_by(key)
            )
            if lock:
                stmt = stmt.with_for_update()
            for row in conn.execute(stmt):
                found[row[0]] = row
        return found

    def _upsert(self, table: sa.Table, *columns: str) -> Any:
        """INSERT of the key and ``columns`` that overwrites those columns of an existing row."""
        (key,) = table.primary_key.columns
        stmt = self._insert(table)
        return stmt.on_conflict_do_update(
            index_elements=[key], set_={name: stmt.excluded[name] for name in columns}
        )
