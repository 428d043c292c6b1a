"""Growable column tables of numpy arrays, and the customer join the simulator's look-ups need."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class Columns:
    """A table of named numpy columns that grows by appending chunks.

    Chunks are concatenated lazily, on the first read after an append, so appending many small
    batches costs nothing until the table is looked at.
    """

    def __init__(self, dtypes: Mapping[str, np.dtype | type | str]) -> None:
        self.dtypes = {name: np.dtype(d) for name, d in dtypes.items()}
        self._chunks: list[dict[str, np.ndarray]] = []
        self._data = {name: np.empty(0, dtype=d) for name, d in self.dtypes.items()}

    def __len__(self) -> int:
        return len(next(iter(self.data.values())))

    def add(self, **columns: np.ndarray) -> None:
        """Append rows; every column must be given, all of one length."""
        if set(columns) != set(self.dtypes):
            missing = set(self.dtypes) ^ set(columns)
            raise ValueError(f"columns do not match the table: {sorted(missing)}")
        lengths = {len(np.atleast_1d(v)) for v in columns.values()}
        if len(lengths) != 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        if lengths.pop() == 0:
            return
        self._chunks.append(
            {name: np.asarray(v, dtype=self.dtypes[name]) for name, v in columns.items()}
        )

    @property
    def data(self) -> dict[str, np.ndarray]:
        """All rows, one array per column."""
        if self._chunks:
            parts = [self._data, *self._chunks]
            self._data = {name: np.concatenate([p[name] for p in parts]) for name in self.dtypes}
            self._chunks = []
        return self._data

    def pop(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Remove the rows where ``mask`` is True and return them."""
        data = self.data
        taken = {name: col[mask] for name, col in data.items()}
        self._data = {name: col[~mask] for name, col in data.items()}
        return taken


def pairs(owner: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (query row, owner row) pair whose values are equal, without a Python loop.

    Parameters
    ----------
    owner : ndarray of int, shape (m,)
        The customer each buffered row belongs to.
    query : ndarray of int, shape (n,)
        The customers asked about.

    Returns
    -------
    q, b : ndarray of int
        ``owner[b] == query[q]`` for every pair.
    """
    if len(owner) == 0 or len(query) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    lo = np.searchsorted(sorted_owner, query, side="left")
    counts = np.searchsorted(sorted_owner, query, side="right") - lo
    total = int(counts.sum())
    q = np.repeat(np.arange(len(query)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    b = order[np.repeat(lo, counts) + offsets]
    return q, b
