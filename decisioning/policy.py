"""The policy contract: a full probability distribution over the eligible actions.

Every policy (learned or rule-based) maps a ``DecisionContext`` to a distribution that sums to
1 and is zero on the actions the contact policy masked; the choice is drawn from it with a
seeded generator, so every decision carries the propensity of the action it took.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Protocol, runtime_checkable

import numpy as np

from decisioning.actions import ActionSpace
from decisioning.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a policy sees for one customer at one moment.

    ``action_features`` is a (len(actions), len(ACTION_FEATURES)) array whose row i describes
    ``actions[i]`` for this customer (columns in ``decisioning.features.ACTION_FEATURES`` order);
    ``eligible[i]`` says whether the contact policy lets it through (``eligible[0]``, doing
    nothing, is always True). Policies score eligible actions only: the rows of blocked actions
    are zeros when the context comes from ``decisioning.context``.
    ``request`` holds the caller's key-value context (device, weather, ...).
    """

    customer_id: str
    now: float
    actions: ActionSpace
    customer: dict[str, float]
    attributes: dict[str, Any]
    action_features: np.ndarray
    eligible: np.ndarray
    request: dict[str, Any] = field(default_factory=dict)
    costs: np.ndarray | None = None  # cost of each action, for policies that net it out


@runtime_checkable
class Policy(Protocol):
    """Anything that can decide: ``action_distribution`` and, if it knows them, expected values."""

    name: str

    def action_distribution(self, context: DecisionContext) -> np.ndarray:
        """Probabilities over ``context.actions``: sums to 1, zero where not eligible."""
        ...

    def expected_values(self, context: DecisionContext) -> np.ndarray | None:
        """Expected net value of each action, or None for a policy without a value model.

        Actions the context does not allow may be left unscored (0): no policy may take them.
        """
        ...


@dataclass(frozen=True, slots=True)
class ServedPolicy:
    """The policy deciding for an objective, and the model version its decisions log."""

    policy: Policy
    model_version: str
    fallback: bool = False


def validate_distribution(dist: np.ndarray, eligible: np.ndarray, *, atol: float = 1e-6) -> None:
    """Raise if ``dist`` is not a probability distribution supported on ``eligible``."""
    if dist.shape != eligible.shape:
        raise InvalidInput(f"distribution has shape {dist.shape}, expected {eligible.shape}")
    if not np.all(np.isfinite(dist)) or np.any(dist < -atol):
        raise InvalidInput("distribution has negative or non-finite probabilities")
    if abs(float(dist.sum()) - 1.0) > atol:
        raise InvalidInput(f"distribution sums to {float(dist.sum())}, not 1")
    if np.any(dist[~eligible] > atol):
        raise InvalidInput("distribution puts probability on a masked action")


def masked_softmax(
    scores: np.ndarray, eligible: np.ndarray, temperature: float = 1.0
) -> np.ndarray:
    """A softmax over the eligible entries of ``scores``, zero elsewhere."""
    z = np.where(eligible, scores / max(temperature, 1e-12), -np.inf)
    z = z - z[eligible].max()
    e = np.where(eligible, np.exp(z), 0.0)
    return e / e.sum()


def epsilon_greedy(scores: np.ndarray, eligible: np.ndarray, epsilon: float) -> np.ndarray:
    """Mass ``1 - epsilon`` on the best eligible action, the rest spread over the eligible ones."""
    n = int(eligible.sum())
    dist = np.where(eligible, epsilon / n, 0.0)
    best = int(np.argmax(np.where(eligible, scores, -np.inf)))
    dist[best] += 1.0 - epsilon
    return dist


def uniform(eligible: np.ndarray) -> np.ndarray:
    """Equal probability on every eligible action."""
    return eligible.astype(float) / float(eligible.sum())


def draw(dist: np.ndarray, rng: np.random.Generator | float) -> tuple[int, float]:
    """Draw an action index from ``dist``; returns it with its propensity.

    ``rng`` is a generator, or a uniform number in [0, 1) already drawn (e.g. from a hash).
    """
    u = rng if isinstance(rng, float) else rng.random()
    # in Python: a few dozen actions cost less than numpy's calls (the same sums, in order)
    probs = dist.tolist() if isinstance(dist, np.ndarray) else [float(p) for p in dist]
    cdf = list(accumulate(probs))
    i = min(bisect_right(cdf, u * cdf[-1]), len(probs) - 1)
    while probs[i] <= 0.0:  # never land on a masked action through rounding
        i -= 1
    return i, probs[i]
