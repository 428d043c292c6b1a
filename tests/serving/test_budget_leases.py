"""Budget leases: contacts paid in memory from budget reserved ahead, never an overspend."""

from __future__ import annotations

import threading
from pathlib import Path

from decisioning.store import open_store
from serving.budget_leases import BudgetLeases


def _leases(store, fraction: float) -> BudgetLeases:  # type: ignore[no-untyped-def]
    return BudgetLeases(
        lambda o, k, amount, limit: store.reserve_spend(o, k, amount, limit=limit),
        store.add_spend,
        fraction=fraction,
    )


def test_engines_leasing_together_never_overspend_and_give_back_the_rest(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    with open_store(url, create=True) as a, open_store(url) as b:
        engines = [_leases(a, 0.15), _leases(b, 0.15)]
        paid = [0.0, 0.0]

        def spend(i: int) -> None:
            for _ in range(40):
                if engines[i].pay("o1", "2024-05", 0.75, limit=20.0):
                    paid[i] += 0.75

        threads = [threading.Thread(target=spend, args=(i,)) for i in (0, 1, 0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(paid) <= 20.0
        assert a.spent("o1", "2024-05") <= 20.0 + 1e-9  # leases included, within the limit
        for engine in engines:
            engine.release()
        assert a.spent("o1", "2024-05") == sum(paid)


def test_a_contact_bigger_than_the_lease_still_fits_while_the_budget_does(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'b.db'}", create=True) as store:
        leases = _leases(store, 0.01)
        assert leases.pay("o1", "d", 3.0, limit=10.0)
        assert leases.leased("o1", "d") == 0.0
        assert leases.pay("o1", "d", 7.0, limit=10.0)
        assert not leases.pay("o1", "d", 0.01, limit=10.0)
        assert store.spent("o1", "d") == 10.0
