"""Budget spend: atomic additions and capped reservations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from decisioning.errors import InvalidInput
from decisioning.store import Store


def test_add_spend_returns_running_totals_per_period(store: Store) -> None:
    assert store.spent("o1", "2024-05") == 0.0
    assert store.add_spend("o1", "2024-05", 1.25) == 1.25
    assert store.add_spend("o1", "2024-05", 2.0) == 3.25
    assert store.add_spend("o1", "2024-06", 4.0) == 4.0
    assert store.add_spend("o2", "2024-05", 9.0) == 9.0
    assert store.spent("o1", "2024-05") == 3.25
    assert store.spend_by_period("o1") == {"2024-05": 3.25, "2024-06": 4.0}


def test_reservations_never_overspend_under_concurrency(store: Store) -> None:
    def reserve(_: int) -> int:
        return sum(store.reserve_spend("o1", "d", 1.0, limit=30.0) for _ in range(15))

    with ThreadPoolExecutor(4) as pool:
        granted = sum(pool.map(reserve, range(4)))
    assert granted == 30
    assert store.spent("o1", "d") == 30.0


def test_spend_must_be_finite(store: Store) -> None:
    with pytest.raises(InvalidInput, match="finite"):
        store.add_spend("o1", "d", float("nan"))
