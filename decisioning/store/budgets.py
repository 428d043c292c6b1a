"""Budget spend per objective and period, added atomically by concurrent deciders."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import sqlalchemy as sa

from decisioning.errors import InvalidInput
from decisioning.store.engine import StoreBase
from decisioning.store.schema import budgets


def _check(objective_id: str, period_key: str, amount: float) -> float:
    if not objective_id or not period_key:
        raise InvalidInput("budget spend needs an objective_id and a period_key")
    if math.isnan(amount) or math.isinf(amount):
        raise InvalidInput(f"objective {objective_id!r}: spend must be finite, got {amount}")
    return float(amount)


class BudgetsMixin(StoreBase):
    """Money spent per objective and budget period."""

    def add_spend(self, objective_id: str, period_key: str, amount: float) -> float:
        """Add ``amount`` to the period's spend in one atomic statement; the new total."""
        amount = _check(objective_id, period_key, amount)
        stmt = self._insert(budgets).values(
            objective_id=objective_id,
            period_key=period_key,
            spent=amount,
            updated_at=datetime.now(UTC),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[budgets.c.objective_id, budgets.c.period_key],
            set_={
                "spent": budgets.c.spent + stmt.excluded.spent,
                "updated_at": stmt.excluded.updated_at,
            },
        ).returning(budgets.c.spent)
        with self._write() as conn:
            return float(conn.execute(stmt).scalar_one())

    def reserve_spend(
        self, objective_id: str, period_key: str, amount: float, *, limit: float
    ) -> bool:
        """Add ``amount`` only if the period's spend stays within ``limit``; whether it did.

        The check and the addition are one transaction, so concurrent deciders can never
        overspend the budget together.
        """
        amount = _check(objective_id, period_key, amount)
        with self._write() as conn:
            conn.execute(
                self._insert(budgets)
                .values(
                    objective_id=objective_id,
                    period_key=period_key,
                    spent=0.0,
                    updated_at=datetime.now(UTC),
                )
                .on_conflict_do_nothing(
                    index_elements=[budgets.c.objective_id, budgets.c.period_key]
                )
            )
            done = conn.execute(
                sa.update(budgets)
                .where(
                    budgets.c.objective_id == objective_id,
                    budgets.c.period_key == period_key,
                    budgets.c.spent + amount <= limit,
                )
                .values(spent=budgets.c.spent + amount, updated_at=datetime.now(UTC))
            ).rowcount
        return bool(done)

    def spent(self, objective_id: str, period_key: str) -> float:
        """What the objective has spent in the period (0.0 if nothing yet)."""
        with self._read() as conn:
            value = conn.execute(
                sa.select(budgets.c.spent).where(
                    budgets.c.objective_id == objective_id, budgets.c.period_key == period_key
                )
            ).scalar_one_or_none()
        return float(value or 0.0)

    def spend_by_period(self, objective_id: str) -> dict[str, float]:
        """Every budget period of the objective and what it spent, by period key."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(budgets.c.period_key, budgets.c.spent)
                .where(budgets.c.objective_id == objective_id)
                .order_by(budgets.c.period_key)
            ).all()
        return {key: float(spent) for key, spent in rows}
