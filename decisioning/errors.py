"""Exceptions raised by the domain core; the service maps them to HTTP responses in one place."""

from __future__ import annotations


class DecisioningError(Exception):
    """Root of every error the domain raises on purpose."""


class InvalidInput(DecisioningError, ValueError):
    """Input that breaks the data contract or an objective's rules; the message says where."""


class HistoryError(InvalidInput):
    """A history table (customers, contacts, events) that does not follow the data contract."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        where = ", ".join(
            part
            for part in (
                f"file {file}" if file else "",
                f"column {column!r}" if column else "",
                f"row {row}" if row is not None else "",
            )
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.column, self.row = file, column, row


class SegmentError(InvalidInput):
    """A segment expression that cannot be parsed or names an unknown field."""


class NotFound(DecisioningError, LookupError):
    """Something asked for by id does not exist."""


class Conflict(DecisioningError):
    """An operation that is not allowed in the current state (e.g. activating an archived objective)."""


class LearningError(DecisioningError):
    """Training data that cannot give a sound model (too little history, nothing to learn)."""
