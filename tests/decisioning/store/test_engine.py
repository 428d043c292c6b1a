"""Opening the store: URLs, SQLite's journal mode, the default location."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from decisioning.errors import InvalidInput
from decisioning.store import open_store
from decisioning.store.engine import dumps, normalise_url


def test_sqlite_runs_in_wal_mode_and_writes_take_the_lock_at_begin(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'db' / 'x.db'}", create=True) as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        statements: list[str] = []
        sa.event.listen(
            store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]), retval=False
        )
        store.add_spend("o", "p", 1.0)
        assert store.spent("o", "p") == 1.0
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN IMMEDIATE", "BEGIN DEFERRED"]


def test_urls_are_checked_and_postgresql_uses_psycopg() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(InvalidInput, match="only sqlite"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(InvalidInput, match="not a valid"):
        normalise_url("not a url")


def test_default_store_lives_in_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DECISIONING_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DECISIONING_DATABASE_URL", raising=False)
    with open_store(create=True) as store:
        assert store.count_customers() == 0
    assert (tmp_path / "data" / "decisioning.db").exists()


def test_documents_are_stored_as_json() -> None:
    doc = {"a": [1, 2.5, None], "b": "é", "when": datetime(2024, 5, 1, tzinfo=UTC)}
    assert json.loads(dumps(doc)) == {**doc, "when": "2024-05-01T00:00:00+00:00"}
    with pytest.raises(TypeError):
        dumps({"a": object()})
