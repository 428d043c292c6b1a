"""The store: customer states, objectives, the decision log and budgets in one database.

>>> store = open_store("sqlite:///data/decisioning.db")  # doctest: +SKIP
>>> store.create_all()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from decisioning.fatigue import FatigueSettings
from decisioning.store.budgets import BudgetsMixin
from decisioning.store.bulk import BulkMixin
from decisioning.store.decisions import DecisionsMixin
from decisioning.store.engine import BUSY_TIMEOUT, make_engine, sqlite_file
from decisioning.store.hot import ReadThrough, monotonic
from decisioning.store.log_process import InsertProcess
from decisioning.store.objectives import ObjectivesMixin
from decisioning.store.schema import metadata

#: customers read per query while warming a hot store
WARM_PAGE = 2000


class Store(BulkMixin, ObjectivesMixin, DecisionsMixin, BudgetsMixin):
    """Everything the service keeps, behind one API for SQLite and PostgreSQL.

    Safe to share between threads; each process opens its own (``open_store`` with the same
    URL). ``fatigue`` sets how contacts weigh on the states it builds. ``log_process=True``
    inserts the deferred decision log from a helper process when the database is a SQLite
    file, so that the inserts do not take the interpreter from the deciding threads (see
    ``decisioning.store.log_process``); other databases insert from the writer thread.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        fatigue: FatigueSettings | None = None,
        hot: bool = False,
        hot_ttl: float = 60.0,
        hot_entries: int = 1_000_000,
        log_process: bool = False,
    ) -> None:
        super().__init__(engine)
        self.fatigue = fatigue
        database = sqlite_file(engine.url)
        if log_process and database is not None:
            timeout = engine.get_execution_options().get(BUSY_TIMEOUT, 60.0)
            self.insert_process = InsertProcess(database, busy_timeout=timeout)
        if hot:
            self.state_cache = ReadThrough(ttl=hot_ttl, max_entries=hot_entries, clock=monotonic)
            self.pending_cache = ReadThrough(ttl=hot_ttl, max_entries=hot_entries, clock=monotonic)

    @property
    def hot(self) -> bool:
        """Whether customer states and scheduled sends are kept in this process's memory."""
        return self.state_cache is not None

    def warm(self, *, limit: int | None = None) -> int:
        """Load stored states and scheduled sends into a hot store's memory ahead of use.

        At most ``limit`` customers (default: as many as the cache holds); how many were
        loaded. A store that is not hot loads nothing.
        """
        if self.state_cache is None or self.pending_cache is None:
            return 0
        limit = self.state_cache.max_entries if limit is None else limit
        loaded = 0
        page: list[str] = []
        for cid in self.iter_customer_ids():
            if loaded + len(page) >= limit:
                break
            page.append(cid)
            if len(page) == WARM_PAGE:
                loaded += self._warm_page(page)
                page = []
        return loaded + (self._warm_page(page) if page else 0)

    def _warm_page(self, page: list[str]) -> int:
        assert self.state_cache is not None and self.pending_cache is not None
        self.state_cache.get_many(page, self._load_states)
        self.pending_cache.get_many(page, self._load_pending_items)
        return len(page)

    def forget_hot(self) -> None:
        """Empty the in-process caches: the next reads go to the database."""
        for cache in (self.state_cache, self.pending_cache):
            if cache is not None:
                cache.clear()

    def create_all(self) -> None:
        """Create the tables that do not exist yet (existing ones are left as they are)."""
        metadata.create_all(self.engine)

    def drop_all(self) -> None:
        """Drop every table of the store, with its data."""
        self.flush_decisions()
        metadata.drop_all(self.engine)
        self.forget_hot()
        self.__dict__.pop("_spaces", None)  # the action spaces known to be stored

    def close(self) -> None:
        """Insert the queued decision-log rows, then close the store's connections."""
        for cache in (self.state_cache, self.pending_cache):
            if cache is not None:
                cache.stop_refreshing()
        writer = self.__dict__.get("_log_writer")
        if writer is not None:
            writer.close()  # and the insert process with it
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"


def open_store(
    url: str | None = None,
    *,
    fatigue: FatigueSettings | None = None,
    create: bool = False,
    echo: bool = False,
    hot: bool = False,
    hot_ttl: float = 60.0,
    log_process: bool = False,
) -> Store:
    """Open the store at ``url``: ``sqlite:///path.db`` or ``postgresql+psycopg://...``.

    Without a URL, the one from the settings (``DECISIONING_DATABASE_URL``, else a SQLite file
    in the data directory). ``create=True`` also creates missing tables. ``hot=True`` keeps
    customer states and scheduled sends in memory (for the process that decides; writes by
    other processes are seen after ``hot_ttl`` seconds, see ``decisioning.store.hot``).
    ``log_process=True`` inserts the deferred decision log from a helper process (SQLite files).
    """
    if url is None:
        from decisioning.settings import Settings

        url = Settings().resolved_database_url
    store = Store(
        make_engine(url, echo=echo),
        fatigue=fatigue,
        hot=hot,
        hot_ttl=hot_ttl,
        log_process=log_process,
    )
    if create:
        store.create_all()
    return store
