"""Where the service gets its policies when no trained model is served: the rule-based fallback.

The engine asks a :class:`~serving.engine.PolicySource` for each objective's policy. In
production that is the MLflow champion loader (``training.registry.ChampionPolicies``), which
itself falls back to the waterfall rule for an objective without a champion; this module's
:class:`FallbackPolicies` serves the waterfall rule for every objective, so the service runs
(and its API can be tested) without MLflow.
"""

from __future__ import annotations

from typing import Any

from decisioning.objectives import Objective
from decisioning.policy import ServedPolicy
from models.baselines import WaterfallPolicy

FALLBACK_VERSION = "fallback:waterfall"


class FallbackPolicies:
    """Serves the rule-based waterfall policy for every objective (``fallback=True``).

    Parameters
    ----------
    seed : int
        Seed of the waterfall policy (it is deterministic; the seed only names it).
    """

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self._served = ServedPolicy(WaterfallPolicy(seed=seed), FALLBACK_VERSION, fallback=True)
        self._seen: set[str] = set()

    def policy_for(self, objective: Objective) -> ServedPolicy:
        """The waterfall policy, whatever the objective."""
        self._seen.add(objective.id)
        return self._served

    def reload(self) -> dict[str, Any]:
        """Nothing to load: the rule needs no model. What each objective serves."""
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """Objective id -> model version, for the objectives decided for so far."""
        return dict.fromkeys(sorted(self._seen), FALLBACK_VERSION)
