"""The decision log inserted from a helper process (SQLite files)."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from decisioning.actions import DO_NOTHING
from decisioning.store import Store, open_store
from decisioning.store.engine import sqlite_file
from decisioning.store.log_process import InsertFailed, InsertProcess
from tests.decisioning.store.support import at
from tests.decisioning.store.test_decisions import decision


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'decisioning.db'}"


@pytest.fixture
def logged(url: str) -> Iterator[Store]:
    with open_store(url, create=True, hot=True, log_process=True) as store:
        yield store


def test_decisions_inserted_by_the_helper_read_back_as_logged(logged: Store, url: str) -> None:
    original = decision("d1", send_hours=6)
    logged.log_decisions([original, decision("d2", action=DO_NOTHING)], defer=True)
    logged.log_decision(original, defer=True)  # logged twice: kept once
    assert logged.get_decision("d1").decision == original  # reading flushed through the helper
    helper = logged.insert_process
    assert helper is not None and helper.pid not in (None, os.getpid())
    with open_store(url) as other:
        assert [d.decision.decision_id for d in other.iter_decisions()] == ["d1", "d2"]
        assert other.pending_sends("c0") == [at(6).timestamp()]


def test_closing_the_store_inserts_the_queue_and_stops_the_helper(url: str) -> None:
    with open_store(url, create=True, log_process=True) as store:
        store.log_decisions([decision(f"d{i}") for i in range(50)], defer=True)
        helper = store.insert_process
    assert helper is not None and helper.pid is None and helper.started == 1
    with open_store(url) as reopened:
        assert len(list(reopened.iter_decisions())) == 50


def test_a_helper_that_died_is_replaced_without_losing_a_row(logged: Store) -> None:
    logged.log_decisions([decision(f"a{i}") for i in range(10)], defer=True)
    logged.flush_decisions()
    helper = logged.insert_process
    assert helper is not None and helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)
    logged.log_decisions([decision(f"b{i}") for i in range(10)], defer=True)
    assert len(list(logged.iter_decisions())) == 20
    assert helper.started == 2


def test_a_refused_batch_is_named_and_kept_until_it_can_be_inserted(logged: Store) -> None:
    with logged.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE decisions RENAME TO decisions_away")
    logged.log_decisions([decision("d1"), decision("d2")], defer=True)
    with pytest.raises(InsertFailed, match="no such table: decisions"):
        logged.flush_decisions()
    assert [r["decision_id"] for r in logged.log_writer.unflushed()] == ["d1", "d2"]
    with logged.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE decisions_away RENAME TO decisions")
    assert logged.get_decision("d2").decision == decision("d2")
    assert logged.log_writer.pending() == 0


def test_a_batch_sent_again_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v REAL)")
    helper = InsertProcess(str(path), busy_timeout=5.0)
    try:
        rows = [("a", 1.0), ("b", None)]
        assert helper.insert("INSERT OR IGNORE INTO t VALUES (?, ?)", rows) == 2
        assert helper.insert("INSERT OR IGNORE INTO t VALUES (?, ?)", rows) == 0
        with pytest.raises(InsertFailed, match="has 2 columns but 3 values"):
            helper.insert("INSERT INTO t VALUES (?, ?, ?)", [("c", 1.0, 2)])
    finally:
        helper.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT k, v FROM t ORDER BY k").fetchall() == rows


def test_only_a_sqlite_file_gets_a_helper() -> None:
    assert open_store("sqlite://", log_process=True).insert_process is None
    assert sqlite_file(sa.make_url("sqlite://")) is None
    assert sqlite_file(sa.make_url("sqlite:///file::memory:?cache=shared")) is None
    assert sqlite_file(sa.make_url("postgresql+psycopg://u@h/db")) is None
    assert sqlite_file(sa.make_url("sqlite:///a/b.db")) == str(Path("a/b.db").resolve())
