"""Objective documents, versioned: an edit adds a version, a version's content never changes.

The store keeps objectives as JSON documents (the domain model validates them); ``id``,
``version`` and ``status`` are keys of every document. The lifecycle status belongs to the
objective and is kept on its latest version.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from decisioning.errors import Conflict, InvalidInput, NotFound
from decisioning.store.engine import StoreBase, dumps
from decisioning.store.schema import objectives

_latest_version = (
    sa.select(objectives.c.objective_id, sa.func.max(objectives.c.version).label("version"))
    .group_by(objectives.c.objective_id)
    .subquery("latest")
)


class ObjectivesMixin(StoreBase):
    """Saving, versioning and listing objective documents."""

    def save_objective(self, doc: Mapping[str, Any], *, expected_version: int | None = None) -> int:
        """Store ``doc`` as the objective's next version (1 for a new id); that version.

        ``doc["version"]`` is set to the new version in the stored document. With
        ``expected_version``, the save fails with ``Conflict`` unless the latest stored version
        is that one (0: the objective must not exist yet), so two editors cannot overwrite
        each other's edit unnoticed.
        """
        objective_id = doc.get("id")
        if not isinstance(objective_id, str) or not objective_id:
            raise InvalidInput("objective document needs a non-empty string 'id'")
        status = doc.get("status")
        if not isinstance(status, str) or not status:
            raise InvalidInput(f"objective {objective_id!r}: needs a non-empty string 'status'")
        try:
            dumps(doc)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"objective {objective_id!r}: not storable as JSON: {exc}") from None
        for _attempt in range(5):
            try:
                return self._insert_version(objective_id, status, doc, expected_version)
            except sa.exc.IntegrityError:
                # another writer took this version number first (PostgreSQL): read again
                if expected_version is not None:
                    raise Conflict(
                        f"objective {objective_id!r} changed while saving (expected version "
                        f"{expected_version})"
                    ) from None
        raise Conflict(f"objective {objective_id!r}: too many concurrent edits, try again")

    def get_objective(self, objective_id: str, version: int | None = None) -> dict[str, Any]:
        """The objective's document at ``version`` (the latest by default)."""
        stmt = sa.select(objectives.c.doc, objectives.c.status).where(
            objectives.c.objective_id == objective_id
        )
        if version is None:
            stmt = stmt.order_by(objectives.c.version.desc()).limit(1)
        else:
            stmt = stmt.where(objectives.c.version == version)
        with self._read() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            at = "" if version is None else f" version {version}"
            raise NotFound(f"objective {objective_id!r}{at} not found")
        return _with_status(row.doc, row.status)

    def list_objectives(self, status: str | None = None) -> list[dict[str, Any]]:
        """The latest version of every objective (only those in ``status`` if given), by id."""
        stmt = (
            sa.select(objectives.c.doc, objectives.c.status)
            .join(
                _latest_version,
                sa.and_(
                    objectives.c.objective_id == _latest_version.c.objective_id,
                    objectives.c.version == _latest_version.c.version,
                ),
            )
            .order_by(objectives.c.objective_id)
        )
        if status is not None:
            stmt = stmt.where(objectives.c.status == status)
        with self._read() as conn:
            return [_with_status(row.doc, row.status) for row in conn.execute(stmt)]

    def objective_versions(self, objective_id: str) -> list[dict[str, Any]]:
        """Every version of the objective, oldest first (its edit history)."""
        stmt = (
            sa.select(objectives.c.doc, objectives.c.status)
            .where(objectives.c.objective_id == objective_id)
            .order_by(objectives.c.version)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            raise NotFound(f"objective {objective_id!r} not found")
        return [_with_status(row.doc, row.status) for row in rows]

    def set_objective_status(self, objective_id: str, status: str) -> dict[str, Any]:
        """Move the objective to ``status`` (kept on its latest version); the updated document."""
        if not status:
            raise InvalidInput(f"objective {objective_id!r}: empty status")
        with self._write() as conn:
            latest = conn.execute(
                sa.select(objectives.c.version, objectives.c.doc)
                .where(objectives.c.objective_id == objective_id)
                .order_by(objectives.c.version.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if latest is None:
                raise NotFound(f"objective {objective_id!r} not found")
            conn.execute(
                sa.update(objectives)
                .where(
                    objectives.c.objective_id == objective_id,
                    objectives.c.version == latest.version,
                )
                .values(status=status, doc=_with_status(latest.doc, status))
            )
        return _with_status(latest.doc, status)

    def _insert_version(
        self,
        objective_id: str,
        status: str,
        doc: Mapping[str, Any],
        expected_version: int | None,
    ) -> int:
        with self._write() as conn:
            current = conn.execute(
                sa.select(sa.func.max(objectives.c.version)).where(
                    objectives.c.objective_id == objective_id
                )
            ).scalar_one_or_none()
            current = int(current or 0)
            if expected_version is not None and expected_version != current:
                raise Conflict(
                    f"objective {objective_id!r} is at version {current}, "
                    f"the edit was based on version {expected_version}"
                )
            version = current + 1
            stored = copy.deepcopy(dict(doc))
            stored["version"] = version
            conn.execute(
                sa.insert(objectives).values(
                    objective_id=objective_id,
                    version=version,
                    status=status,
                    doc=stored,
                    created_at=datetime.now(UTC),
                )
            )
        return version


def _with_status(doc: Mapping[str, Any], status: str) -> dict[str, Any]:
    out = dict(doc)
    out["status"] = status
    return out
