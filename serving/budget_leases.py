"""Budget reservations without a database write per contact, and never an overspend.

The engine reserves budget from the store in leases: a slice of the period's budget (at least
what the contact costs) is reserved atomically in the store (``reserve_spend``, the exact,
cross-process check), and the contacts this engine decides are then paid from the slice in
memory. What the store shows as spent is therefore what was paid plus what is still leased; the
unused rest goes back to the budget when the engine closes (``release``). Since every lease
was reserved within the limit, no set of engines together can decide contacts beyond it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class BudgetLeases:
    """Slices of each objective's period budget reserved ahead and spent in memory.

    Parameters
    ----------
    reserve : callable
        ``reserve(objective_id, period_key, amount, limit) -> bool``: the store's atomic
        reservation.
    give_back : callable
        ``give_back(objective_id, period_key, amount)``: returns unused budget to the store.
    fraction : float
        Size of a lease as a fraction of the period's budget.
    """

    def __init__(
        self,
        reserve: Callable[[str, str, float, float], bool],
        give_back: Callable[[str, str, float], object],
        *,
        fraction: float = 0.01,
    ) -> None:
        self._reserve, self._give_back = reserve, give_back
        self.fraction = fraction
        self._lock = threading.Lock()
        self._left: dict[tuple[str, str], float] = {}

    def leased(self, objective_id: str, period_key: str) -> float:
        """What this engine holds, reserved in the store and not yet paid for a contact."""
        return self._left.get((objective_id, period_key), 0.0)

    def pay(self, objective_id: str, period_key: str, amount: float, *, limit: float) -> bool:
        """Pay ``amount`` from the lease, reserving a new one when needed; whether it fit."""
        key = (objective_id, period_key)
        with self._lock:
            left = self._left.get(key, 0.0)
            if amount <= left + 1e-12:
                self._left[key] = left - amount
                return True
            need = amount - left
            for claim in (max(need, self.fraction * limit), need):
                if self._reserve(objective_id, period_key, claim, limit):
                    self._left[key] = left + claim - amount
                    return True
            return False

    def release(self) -> None:
        """Give every unused lease back to the store's budgets."""
        with self._lock:
            left, self._left = self._left, {}
        for (objective_id, period_key), amount in left.items():
            if amount > 1e-12:
                self._give_back(objective_id, period_key, -amount)
