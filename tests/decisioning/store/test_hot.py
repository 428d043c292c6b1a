"""A hot store: states and scheduled sends in memory, the decision log written behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from decisioning.actions import DO_NOTHING
from decisioning.records import Contact, Customer, Event, EventType
from decisioning.store import Store, open_store
from decisioning.store.hot import ReadThrough
from decisioning.store.log_writer import DecisionLogWriter
from tests.decisioning.store.support import at
from tests.decisioning.store.test_decisions import decision


@pytest.fixture
def hot(store_url: str) -> Iterator[Store]:
    with open_store(store_url, hot=True) as opened:
        yield opened


def test_a_cached_state_sees_this_process_events_at_once(
    hot: Store, customers: list[Customer]
) -> None:
    hot.upsert_customers(customers)
    assert hot.warm() == 3
    assert hot.get_state("c0").purchases == 0  # served from memory
    hot.ingest_events([Event("e1", "c0", at(1), EventType.PURCHASE, value=20.0)])
    assert hot.get_state("c0").purchases == 1
    hot.ingest_contacts([Contact("k1", "c1", at(2), "email", cost=0.25)])
    assert len(hot.get_state("c1").channels["email"].recent) == 1
    hot.upsert_customers([Customer("c0", signup_at=at(-100), consents={"email": False})])
    assert hot.get_state("c0").consents["email"] is False


def test_an_unknown_customer_cached_as_unknown_is_found_once_it_exists(hot: Store) -> None:
    assert hot.get_state("new") is None
    hot.ingest_events([Event("e1", "new", at(1), EventType.APP_OPEN)])
    assert hot.get_state("new").app_opens == 1


def test_hot_states_equal_the_stored_ones(store_url: str, customers: list[Customer]) -> None:
    with open_store(store_url, hot=True) as hot, open_store(store_url) as cold:
        hot.upsert_customers(customers)
        hot.warm()
        events = [Event(f"e{i}", f"c{i % 3}", at(i), EventType.APP_OPEN) for i in range(9)]
        for event in events:
            hot.ingest_events([event])
            ids = ["c0", "c1", "c2"]
            assert {c: s.to_dict() for c, s in hot.get_states(ids).items()} == {
                c: s.to_dict() for c, s in cold.get_states(ids).items()
            }


def test_deferred_decisions_are_read_back_at_once(hot: Store) -> None:
    hot.log_decision(decision("d1", send_hours=5), defer=True)
    assert hot.pending_sends("c0") == [at(5).timestamp()]  # before any insert
    assert hot.get_decision("d1").status == "scheduled"  # reading flushes
    hot.update_decision_status("d1", "cancelled")
    assert hot.pending_sends("c0") == []


def test_pending_sends_of_a_warmed_customer_follow_new_decisions(
    hot: Store, customers: list[Customer]
) -> None:
    hot.upsert_customers(customers)
    hot.log_decision(decision("d0", customer="c1", send_hours=3))
    hot.warm()
    assert hot.pending_sends("c1") == [at(3).timestamp()]
    hot.log_decisions(
        [decision("d1", customer="c1", send_hours=4), decision("d2", customer="c1")], defer=True
    )
    hot.log_decision(decision("d3", customer="c1", action=DO_NOTHING), defer=True)
    assert hot.pending_sends("c1") == [at(h).timestamp() for h in (0, 3, 4)]
    assert hot.pending_sends("c1", after=at(3)) == [at(4).timestamp()]


@pytest.mark.parametrize("log_process", [False, True], ids=["thread", "insert-process"])
def test_the_write_behind_log_loses_nothing(store_url: str, log_process: bool) -> None:
    with open_store(store_url, hot=True, log_process=log_process) as hot:

        def log(thread: int) -> None:
            for i in range(200):
                d = decision(f"t{thread}-{i}", customer=f"c{i % 7}", send_hours=i % 5)
                hot.log_decision(d, defer=True)

        threads = [threading.Thread(target=log, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    with open_store(store_url) as reopened:  # closing flushed what was still queued
        assert len(list(reopened.iter_decisions())) == 800
        assert sum(len(reopened.pending_sends(f"c{c}")) for c in range(7)) == 800


def test_a_failed_batch_is_kept_and_inserted_later() -> None:
    written: list[str] = []
    fail = [True]

    def write(rows: Sequence[dict[str, str]]) -> None:
        if fail[0]:
            raise OSError("database unavailable")
        written.extend(r["id"] for r in rows)

    writer = DecisionLogWriter(write, delay=0.0)
    writer.submit([{"id": "a"}, {"id": "b"}])
    with pytest.raises(OSError):
        writer.flush()
    writer.submit([{"id": "c"}])
    assert [r["id"] for r in writer.unflushed()] == ["a", "b", "c"]
    fail[0] = False
    writer.close()
    assert written == ["a", "b", "c"] and writer.pending() == 0


def test_a_load_that_raced_with_a_write_is_not_kept() -> None:
    cache: ReadThrough[int] = ReadThrough(ttl=60.0, max_entries=10, clock=lambda: 0.0)

    def racing_load(keys: list[str]) -> dict[str, int]:
        cache.drop(["k"])  # a write commits while the database is being read
        return {"k": 1}

    assert cache.get_many(["k"], racing_load) == {"k": 1}
    assert cache.get_many(["k"], lambda keys: {"k": 2}) == {"k": 2}  # read again, then kept
    assert cache.get_many(["k"], lambda keys: {"k": 3}) == {"k": 2}


def test_entries_older_than_the_ttl_are_read_again() -> None:
    now = [0.0]
    cache: ReadThrough[int] = ReadThrough(ttl=5.0, max_entries=10, clock=lambda: now[0])
    cache.get_many(["k"], lambda keys: {"k": 1})
    now[0] = 4.0
    assert cache.get_many(["k"], lambda keys: {"k": 2}) == {"k": 1}
    now[0] = 6.0
    assert cache.get_many(["k"], lambda keys: {"k": 2}) == {"k": 2}


def test_a_deferred_decision_reads_back_as_a_logged_one(store_url: str) -> None:
    from decisioning.actions import Action, Slot
    from decisioning.channels import Channel

    original = decision("d1", action=Action(Channel.SMS, Slot.TODAY_EVENING), send_hours=10)
    nothing = decision("d2", action=DO_NOTHING, holdout=True)
    with open_store(store_url, hot=True) as hot:
        hot.log_decisions([original, nothing], defer=True)
        hot.log_decision(original, defer=True)  # logged twice: kept once
        hot.flush_decisions()
        with open_store(store_url) as other:
            assert other.get_decision("d1").decision == original
            assert other.get_decision("d2").decision == nothing
            assert other.get_decision("d2").status == "suppressed"
            assert len(list(other.iter_decisions())) == 2
            assert other.pending_sends("c0") == [at(10).timestamp()]


def _wait_for(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the background reload did not happen"
        time.sleep(0.005)


def test_entries_read_past_half_their_ttl_are_reloaded_ahead_of_expiry() -> None:
    now = [0.0]
    cache: ReadThrough[int] = ReadThrough(ttl=10.0, max_entries=10, clock=lambda: now[0])
    stored = {"a": 1, "b": 1}
    loads: list[list[str]] = []

    def load(keys: list[str]) -> dict[str, int]:
        loads.append(sorted(keys))
        return {k: stored[k] for k in keys}

    assert cache.get_many(["a", "b"], load) == {"a": 1, "b": 1}
    stored.update(a=2, b=2)  # another process writes
    now[0] = 4.0
    assert cache.get_many(["a"], load) == {"a": 1}  # young: served, not reloaded
    now[0] = 6.0
    assert cache.get_many(["a"], load) == {"a": 1}  # past half its ttl: served, then reloaded
    _wait_for(lambda: cache.refreshed == 1)
    assert loads == [["a", "b"], ["a"]]
    now[0] = 12.0  # "b" expired (read again on the request path), "a" was reloaded at 6
    assert cache.get_many(["a", "b"], lambda keys: {k: 3 for k in keys}) == {"a": 2, "b": 3}


def test_a_key_written_while_it_is_reloaded_is_not_kept() -> None:
    now = [0.0]
    cache: ReadThrough[int] = ReadThrough(ttl=10.0, max_entries=10, clock=lambda: now[0])
    cache.get_many(["k", "j"], lambda keys: dict.fromkeys(keys, 1))
    now[0] = 6.0

    def racing_load(keys: list[str]) -> dict[str, int]:
        cache.drop(["k"])  # this process writes "k" while the page is being read
        return dict.fromkeys(keys, 2)

    cache.get_many(["k", "j"], racing_load)
    _wait_for(lambda: cache.refreshed == 2)
    assert cache.get_many(["k", "j"], lambda keys: dict.fromkeys(keys, 5)) == {"k": 5, "j": 2}


def test_without_reloads_ahead_entries_simply_expire() -> None:
    now = [0.0]
    cache: ReadThrough[int] = ReadThrough(
        ttl=10.0, max_entries=10, clock=lambda: now[0], refresh_after=None
    )
    cache.get_many(["k"], lambda keys: {"k": 1})
    now[0] = 9.0
    assert cache.get_many(["k"], lambda keys: {"k": 2}) == {"k": 1}
    time.sleep(0.05)
    assert cache.refreshed == 0
    now[0] = 11.0
    assert cache.get_many(["k"], lambda keys: {"k": 2}) == {"k": 2}
