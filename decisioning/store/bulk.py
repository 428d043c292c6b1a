"""Bulk ingestion of a whole history: states built in memory, written in large batches.

The history's contacts and events are replayed in time order through the same
:class:`~decisioning.store.replay.Replay` as real-time ingestion, so the result is the state the
same events would have built one batch at a time. Ids already in the store are skipped, and
customers that already have a state continue from it.

To bound memory the replay runs over groups of customers (``chunk`` at a time); a visitor and
every customer an identify event links it to always fall in the same group, so groups never
share a state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from decisioning.channels import Channel
from decisioning.customer_view import CustomerState
from decisioning.records import EventType
from decisioning.store.customers import CustomerBook, profile_of
from decisioning.store.ingest import EVENT_FIELDS, ContactsResult, IngestMixin, IngestResult
from decisioning.store.replay import Profile, Replay, ReplayCounts, apply_profile
from decisioning.store.schema import contacts, customers

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from decisioning.history import History

_CONTACT, _EVENT = 0, 1  # decisioning.history_replay.CONTACT / EVENT


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """What loading a history did: customer records applied, events and contacts stored."""

    customers: int
    events: IngestResult
    contacts: ContactsResult


class _Groups:
    """Customers and visitors joined by identity links (union-find), numbered in groups."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, node: str) -> str:
        parent = self.parent
        root = node
        while parent.get(root, root) != root:
            root = parent[root]
        while node != root:  # path compression
            parent[node], node = root, parent.get(node, node)
        return root

    def join(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def number(self, nodes: Iterable[str], size: int) -> dict[str, int]:
        """Group number of each node: ``size`` components per group, components kept whole."""
        roots: dict[str, int] = {}
        out: dict[str, int] = {}
        for node in nodes:
            root = self.find(node)
            if root not in roots:
                roots[root] = len(roots) // size
            out[node] = roots[root]
        return out


def _contact_rows(frame: pd.DataFrame, keep: np.ndarray) -> list[dict[str, Any]]:
    """Rows for the contacts table (times as epoch seconds, absent values as NULL)."""
    part = frame.iloc[np.flatnonzero(keep)]
    text = {
        c: [v or None for v in part[c].tolist()] for c in ("objective", "decision_id", "category")
    }
    numbers = {
        c: [None if np.isnan(v) else v for v in part[c].to_numpy(dtype=float).tolist()]
        for c in ("cost", "propensity")
    }
    ts = _epoch(part["ts"]).tolist()
    send = [None if np.isnan(v) else v for v in _epoch(part["send_at"]).tolist()]
    rows = []
    for i, (cid, customer, channel, slot) in enumerate(
        zip(
            *(part[c].tolist() for c in ("contact_id", "customer_id", "channel", "slot")),
            strict=True,
        )
    ):
        rows.append(
            {
                "contact_id": cid,
                "customer_id": customer,
                "ts": ts[i],
                "channel": channel,
                "slot": slot or "now",
                "send_at": send[i],
                "objective": text["objective"][i],
                "cost": numbers["cost"][i],
                "propensity": numbers["propensity"][i],
                "decision_id": text["decision_id"][i],
                "category": text["category"][i],
                "status": "sent",
            }
        )
    return rows


def _event_columns(frame: pd.DataFrame, keep: np.ndarray, *, text_times: bool) -> dict[str, list]:
    """The events-table columns of ``frame[keep]`` (absent values as NULL).

    Times are epoch seconds, or with ``text_times`` the text SQLite stores, rendered in one
    vectorised call (as :func:`~decisioning.store.ingest.stored_time` renders one). An event naming only a visitor is stored without a customer; the replay's
    identity links give it one afterwards (:meth:`IngestMixin._link_visitor_events`).
    """
    part = frame.iloc[np.flatnonzero(keep)]
    out: dict[str, list[Any]] = {"event_id": part["event_id"].tolist()}
    for c in ("customer_id", "anonymous_id"):
        out[c] = [v or None for v in part[c].tolist()]
    out["from_visitor"] = [c is None for c in out["customer_id"]]
    if text_times:
        micros = part["ts"].dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
        out["ts"] = np.char.replace(np.datetime_as_string(micros, unit="us"), "T", " ").tolist()
    else:
        out["ts"] = _epoch(part["ts"]).tolist()
    out["type"] = part["type"].tolist()
    for c in ("channel", "contact_id"):
        out[c] = [v or None for v in part[c].tolist()]
    out["value"] = [None if np.isnan(v) else v for v in part["value"].to_numpy(float).tolist()]
    out["category"] = [v or None for v in part["category"].tolist()]
    return out


def _epoch(values: pd.Series) -> np.ndarray:
    """Epoch seconds exactly as ``datetime.timestamp()`` gives them (NaN where missing).

    Whole microseconds divided by 1e6 round like Python's own conversion; dividing nanoseconds
    by 1e9 would differ in the last bit, and the real-time path must see the same floats.
    """
    nanos = values.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view("int64")
    out = (nanos // 1000) / 1e6
    out[values.isna().to_numpy()] = np.nan
    return out


def _stream_times(stream: Any, events: pd.DataFrame, sent: pd.DataFrame) -> np.ndarray:
    """The replay stream's times, as :func:`_epoch` gives them (events at ts, contacts at send)."""
    ts = np.empty(len(stream))
    is_event = stream.kind == _EVENT
    ts[is_event] = _epoch(events["ts"])[stream.row[is_event]]
    ts[~is_event] = _epoch(sent["send_at"])[stream.row[~is_event]]
    return ts


def _first_occurrence(ids: np.ndarray) -> np.ndarray:
    """Mask keeping the first row of each id."""
    keep = np.zeros(len(ids), dtype=bool)
    keep[np.unique(ids, return_index=True)[1]] = True
    return keep


class BulkMixin(IngestMixin):
    """Loading a whole history into the store."""

    def ingest_history(self, history: History, *, chunk: int = 20_000) -> HistoryResult:
        """Load a history (customer records, contacts, events) in one transaction.

        Customer records are applied first (as :meth:`upsert_customers`, except that a known
        customer keeps the consents its state holds: the table gives the consents at the start
        of the history, and loading it again must not undo its unsubscribes), then every new
        contact and event in time order (contacts at their ``send_at``, before events at the
        same time). Event and contact ids already stored are skipped, so loading the same
        history twice changes nothing the second time.
        """
        profiles = {p.customer_id: p for p in map(profile_of, history.customer_records())}
        events, frame_contacts = history.events, history.contacts
        event_ids = events["event_id"].to_numpy(dtype=object)
        contact_ids = frame_contacts["contact_id"].to_numpy(dtype=object)
        first_event, first_contact = _first_occurrence(event_ids), _first_occurrence(contact_ids)
        stream = history.replay()
        is_event = stream.kind == _EVENT
        with self._write() as conn:
            text_times = self.dialect == "sqlite"
            columns = _event_columns(events, first_event, text_times=text_times)
            fresh_events = self._insert_events(
                conn, list(zip(*(columns[n] for n in EVENT_FIELDS), strict=True))
            )
            fresh_contacts = self._insert_new(
                conn, contacts, _contact_rows(frame_contacts, first_contact)
            )
            # a row counts once: the first row of its id in the file, and only if the id is new
            event_rows, contact_rows = stream.row[is_event], stream.row[~is_event]
            fresh = np.zeros(len(stream), dtype=bool)
            fresh[is_event] = first_event[event_rows] & _isin(event_ids[event_rows], fresh_events)
            fresh[~is_event] = (
                first_contact[contact_rows]
                & _isin(contact_ids[contact_rows], fresh_contacts)
                & (stream.channel[~is_event] != Channel.NONE.value)
            )
            ts = _stream_times(stream, events, frame_contacts)
            rows = replace(stream, ts=ts).take(np.flatnonzero(fresh))
            counts = self._replay_history(conn, rows, profiles, chunk)
        n_events = len(events)
        return HistoryResult(
            customers=len(profiles),
            events=IngestResult(
                applied=counts.applied,
                duplicates=n_events - counts.applied,
                anonymous=counts.anonymous,
                merged=counts.merged,
            ),
            contacts=ContactsResult(
                applied=len(fresh_contacts), duplicates=len(frame_contacts) - len(fresh_contacts)
            ),
        )

    def _replay_history(
        self, conn: Connection, rows: Any, profiles: dict[str, Profile], chunk: int
    ) -> ReplayCounts:
        """Lock every state the rows reach, then replay them group by group and save."""
        customer_col = rows.customer_id.tolist()
        anon_col = rows.anonymous_id.tolist()
        type_col = rows.type.tolist()
        visitor_ids = {
            a
            for c, a, t in zip(customer_col, anon_col, type_col, strict=True)
            if a and (not c or t == EventType.IDENTIFY.value)
        }
        book = self._read_visitors(conn, visitor_ids)
        links = book.links
        groups = _Groups()
        for aid, cid in links.items():
            if cid:
                groups.join("a:" + aid, "c:" + cid)
        for c, a, t in zip(customer_col, anon_col, type_col, strict=True):
            if c and a and t == EventType.IDENTIFY.value:
                groups.join("a:" + a, "c:" + c)
        customer_ids = set(profiles) | {c for c in customer_col if c}
        customer_ids.update(cid for cid in links.values() if cid)
        customer_ids.update(
            links[a] for c, a in zip(customer_col, anon_col, strict=True) if not c and links.get(a)
        )
        self._lock(conn, customers, customer_ids, customers.c.customer_id)
        nodes = ["c:" + c for c in sorted(customer_ids)] + ["a:" + a for a in sorted(visitor_ids)]
        group_of = groups.number(nodes, chunk)
        row_group = np.fromiter(
            (
                group_of["c:" + c] if c else group_of["a:" + a]
                for c, a in zip(customer_col, anon_col, strict=True)
            ),
            dtype=np.int64,
            count=len(customer_col),
        )
        members: dict[int, list[str]] = {}
        for node, g in group_of.items():
            if node.startswith("c:"):
                members.setdefault(g, []).append(node[2:])
        order = np.argsort(row_group, kind="stable")  # time order kept inside each group
        bounds = np.searchsorted(
            row_group[order], np.arange(max(group_of.values(), default=-1) + 2)
        )
        replay = Replay(customers={}, visitors=book.states, links=links, fatigue=self.fatigue)
        for g in range(len(bounds) - 1):
            group = self._load_group(conn, members.get(g, []), profiles)
            replay.customers = group.states
            self._replay_rows(replay, rows.take(order[bounds[g] : bounds[g + 1]]))
            self._save_customers(conn, group)
        self._save_visitors(conn, book, replay.touched_visitors)
        self._link_visitor_events(conn, links, visitor_ids)
        return replay.counts

    def _load_group(
        self, conn: Connection, ids: list[str], profiles: dict[str, Profile]
    ) -> CustomerBook:
        """States of one group (rows locked already), customer records applied."""
        book = self._read_customers(conn, ids, cold=False, lock=False)
        for cid in ids:
            state = book.states.get(cid)
            if cid in profiles:
                state = apply_profile(state, profiles[cid], self.fatigue, consents=False)
            book.states[cid] = (
                state if state is not None else CustomerState(cid, fatigue=self.fatigue)
            )
        return book

    @staticmethod
    def _replay_rows(replay: Replay, rows: Any) -> None:
        columns = (
            rows.ts.tolist(), rows.kind.tolist(), rows.customer_id.tolist(),
            rows.anonymous_id.tolist(), rows.channel.tolist(), rows.type.tolist(),
            rows.value.tolist(), rows.cost.tolist(), rows.category.tolist(),
        )  # fmt: skip
        event, contact = replay.event, replay.contact
        for ts, kind, cid, aid, channel, kind_name, value, cost, category in zip(
            *columns, strict=True
        ):
            if kind == _EVENT:
                event(
                    ts=ts, type=kind_name, customer_id=cid or None, anonymous_id=aid or None,
                    channel=channel or None, value=value, category=category or None,
                )  # fmt: skip
            else:
                contact(ts=ts, customer_id=cid, channel=channel, cost=cost)


def _isin(ids: np.ndarray, wanted: set[str]) -> np.ndarray:
    return np.fromiter((i in wanted for i in ids.tolist()), dtype=bool, count=len(ids))
