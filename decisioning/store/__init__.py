"""Storage adapters of the domain: one SQLAlchemy code path for SQLite (WAL) and PostgreSQL."""

from decisioning.store.bulk import HistoryResult
from decisioning.store.decisions import (
    TRANSITIONS,
    ChannelSpend,
    DecisionCount,
    LoggedDecision,
    default_status,
)
from decisioning.store.ingest import ContactsResult, IngestResult
from decisioning.store.schema import DECISION_STATUSES
from decisioning.store.store import Store, open_store

__all__ = [
    "DECISION_STATUSES",
    "TRANSITIONS",
    "ChannelSpend",
    "ContactsResult",
    "DecisionCount",
    "HistoryResult",
    "IngestResult",
    "LoggedDecision",
    "Store",
    "default_status",
    "open_store",
]
