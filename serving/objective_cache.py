"""The engine's objectives: compiled once, and reloaded from the store every few seconds.

Compiling an objective parses its segment against the stored customers' fields, builds its
contact policy (the service's guardrails merged with the objective's own) and its action space
with their costs, so that deciding never re-parses or re-builds them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import cast

import numpy as np

from decisioning.actions import ActionSpace
from decisioning.errors import InvalidInput
from decisioning.guardrails import ContactPolicy, ContactPolicySettings
from decisioning.objectives import Objective
from decisioning.segment import Segment, attribute_kinds, field_catalogue
from decisioning.store import Store

#: stored customers whose attributes tell the kinds of the fields a segment may use
_SAMPLE = 500


@dataclass
class CompiledObjective:
    """An active objective, ready to decide: its segment, policy settings and action space."""

    objective: Objective
    segment: Segment
    contact_policy: ContactPolicy
    costs: np.ndarray
    actions: ActionSpace


class ObjectiveCache:
    """The stored objectives, compiled, reloaded at most every ``ttl`` seconds; thread-safe."""

    def __init__(
        self, store: Store, *, contact_settings: ContactPolicySettings, ttl: float
    ) -> None:
        self.store = store
        self.contact_settings = contact_settings
        self.ttl = ttl
        self._lock = threading.Lock()
        self._compiled: dict[str, CompiledObjective] = {}
        self._loaded_at = -float("inf")
        self._fields: dict[str, str] | None = None

    def fields(self) -> dict[str, str]:
        """Fields a segment may use: behavioural features and the customers' attributes."""
        if self._fields is None:
            first = self.store.iter_customer_ids(page=_SAMPLE)  # one page: the sample only
            ids = [cid for _, cid in zip(range(_SAMPLE), first, strict=False)]
            states = self.store.get_states(ids).values()
            catalogue = field_catalogue(attribute_kinds([s.attributes for s in states]))
            self._fields = cast(dict[str, str], catalogue)
        return self._fields

    def refresh(self) -> None:
        """Reload the objectives now (after one was created, edited, paused or activated)."""
        with self._lock:
            self._loaded_at = -float("inf")
            self._fields = None

    def compiled(self) -> dict[str, CompiledObjective]:
        """Every stored objective by id, compiled (reloaded when older than ``ttl``)."""
        now = time.monotonic()
        if now - self._loaded_at < self.ttl:
            return self._compiled
        with self._lock:
            if now - self._loaded_at >= self.ttl:
                compiled: dict[str, CompiledObjective] = {}
                for doc in self.store.list_objectives():
                    objective = Objective.model_validate(doc)
                    compiled[objective.id] = self._compile(objective)
                self._compiled, self._loaded_at = compiled, now
        return self._compiled

    def _compile(self, objective: Objective) -> CompiledObjective:
        settings = self.contact_settings
        if objective.guardrails:
            settings = settings.merged(objective.guardrails)
        return CompiledObjective(
            objective=objective,
            segment=Segment.parse(objective.segment or "", self._lenient_fields(objective)),
            contact_policy=ContactPolicy(settings),
            costs=objective.costs(objective.action_space()),
            actions=objective.action_space(),
        )

    def _lenient_fields(self, objective: Objective) -> dict[str, str]:
        try:
            fields = self.fields()
            Segment.parse(objective.segment or "", fields)
            return fields
        except InvalidInput:
            # Attributes not seen on any stored customer yet: match by the registered text.
            from decisioning.segment import check_segment_syntax

            extra = {f: "text" for f in check_segment_syntax(objective.segment or "")}
            return {**extra, **field_catalogue()}
