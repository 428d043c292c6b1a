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
from decisioning.store.engine import make_engine
from decisioning.store.objectives import ObjectivesMixin
from decisioning.store.schema import metadata


class Store(BulkMixin, ObjectivesMixin, DecisionsMixin, BudgetsMixin):
    """Everything the service keeps, behind one API for SQLite and PostgreSQL.

    Safe to share between threads; each process opens its own (``open_store`` with the same
    URL). ``fatigue`` sets how contacts weigh on the states it builds.
    """

    def __init__(self, engine: Engine, *, fatigue: FatigueSettings | None = None) -> None:
        super().__init__(engine)
        self.fatigue = fatigue

    def create_all(self) -> None:
        """Create the tables that do not exist yet (existing ones are left as they are)."""
        metadata.create_all(self.engine)

    def drop_all(self) -> None:
        """Drop every table of the store, with its data."""
        metadata.drop_all(self.engine)

    def close(self) -> None:
        """Close the store's connections."""
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
) -> Store:
    """Open the store at ``url``: ``sqlite:///path.db`` or ``postgresql+psycopg://...``.

    Without a URL, the one from the settings (``DECISIONING_DATABASE_URL``, else a SQLite file
    in the data directory). ``create=True`` also creates missing tables.
    """
    if url is None:
        from decisioning.settings import Settings

        url = Settings().resolved_database_url
    store = Store(make_engine(url, echo=echo), fatigue=fatigue)
    if create:
        store.create_all()
    return store
