"""Off-policy evaluation: what a candidate policy would have earned on logged decisions.

Logged feedback follows Open Bandit Pipeline's contract, passed as plain arrays:

- ``reward``: (n,) observed reward of each logged decision;
- ``action``: (n,) index of the action the logging policy took;
- ``pscore``: (n,) the logging policy's probability of that action, in (0, 1];
- ``action_dist``: (n, n_actions) the evaluated policy's distribution for each row;
- ``estimated_rewards``: (n, n_actions) a reward model's predictions (DM and DR only).

Every estimator is a mean (or a ratio of means) of per-row terms, so one percentile bootstrap
over rows serves them all; :func:`evaluate_policies` resamples every policy and estimator with
the same rows, which makes differences between policies less noisy than separate draws would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from decisioning.errors import InvalidInput, LearningError
from training.ope_checks import (
    check_action,
    check_action_dist,
    check_action_in_range,
    check_bootstrap,
    check_clip,
    check_estimated_rewards,
    check_logged,
    check_logged_with,
    check_pscore,
)

ESTIMATORS: tuple[str, ...] = ("ips", "snips", "dm", "dr")
_NEEDS_REWARD_MODEL = frozenset({"dm", "dr"})
_BLOCK = 1 << 22  # resampled rows held at once: bounds bootstrap memory to ~64 MB

RandomState = int | np.random.Generator | None


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy value estimate with its percentile-bootstrap confidence interval.

    ``ess`` is the effective sample size of the importance weights the estimator used
    (``n`` for DM, which weights every row equally).
    """

    name: str
    value: float
    ci_low: float
    ci_high: float
    alpha: float
    n: int
    ess: float


@dataclass(frozen=True, slots=True)
class PolicyEstimate:
    """One row of an :class:`OPETable`: one policy under one estimator.

    ``max_weight`` is the policy's largest importance weight on the log (after clipping, for
    the estimators that clip): a single row can move the estimate by up to that many rewards.
    """

    policy: str
    estimate: Estimate
    max_weight: float


@dataclass(frozen=True, slots=True)
class OPETable:
    """Estimates of several candidate policies on the same logged decisions."""

    rows: tuple[PolicyEstimate, ...]

    @property
    def policies(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.policy for r in self.rows))

    @property
    def estimators(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.estimate.name for r in self.rows))

    def get(self, policy: str, estimator: str = "dr") -> Estimate:
        """The estimate of ``policy`` under ``estimator``."""
        for row in self.rows:
            if row.policy == policy and row.estimate.name == estimator:
                return row.estimate
        raise InvalidInput(
            f"no {estimator!r} estimate for policy {policy!r}; table has policies "
            f"{list(self.policies)} and estimators {list(self.estimators)}"
        )

    def best(self, estimator: str = "dr", *, by: str = "value") -> str:
        """The policy with the highest estimate (``by="ci_low"`` ranks by the lower bound)."""
        if estimator not in self.estimators:
            raise InvalidInput(f"estimator: {estimator!r} is not in {list(self.estimators)}")
        if by not in ("value", "ci_low"):
            raise InvalidInput(f"by: must be 'value' or 'ci_low', got {by!r}")
        scored = [
            (getattr(r.estimate, by), r.policy)
            for r in self.rows
            if r.estimate.name == estimator and np.isfinite(getattr(r.estimate, by))
        ]
        if not scored:
            raise LearningError(f"no policy has a finite {estimator!r} estimate")
        return max(scored, key=lambda s: s[0])[1]

    def to_frame(self) -> pd.DataFrame:
        """One row per policy and estimator."""
        return pd.DataFrame(
            [
                {"policy": r.policy, **asdict(r.estimate), "max_weight": r.max_weight}
                for r in self.rows
            ]
        ).rename(columns={"name": "estimator"})


# ---------------------------------------------------------------------------------------------
# Weights


def importance_weights(
    action: np.ndarray, action_dist: np.ndarray, pscore: np.ndarray
) -> np.ndarray:
    """Ratio of the evaluated to the logging probability of each logged action, shape (n,)."""
    action = check_action(action, None)
    pscore = check_pscore(pscore, action.shape[0])
    action_dist = check_action_dist(action_dist, "action_dist", action.shape[0])
    check_action_in_range(action, action_dist.shape[1])
    return _weights(action, action_dist, pscore)


def effective_sample_size(weights: np.ndarray) -> float:
    """How many equally weighted rows the weighted sample is worth: (sum w)^2 / sum w^2."""
    w = np.asarray(weights, dtype=float)
    sq = float(np.dot(w, w))
    return float(w.sum()) ** 2 / sq if sq > 0.0 else 0.0


def max_weight(weights: np.ndarray) -> float:
    """The largest importance weight: how much a single row can move an IPS estimate."""
    w = np.asarray(weights, dtype=float)
    return float(w.max()) if w.size else 0.0


def _weights(action: np.ndarray, action_dist: np.ndarray, pscore: np.ndarray) -> np.ndarray:
    return action_dist[np.arange(action.shape[0]), action] / pscore


def _clipped(w: np.ndarray, clip: float | None) -> np.ndarray:
    return w if clip is None else np.minimum(w, clip)


# ---------------------------------------------------------------------------------------------
# Estimators


def ips(
    *,
    reward: np.ndarray,
    action: np.ndarray,
    action_dist: np.ndarray,
    pscore: np.ndarray,
    clip: float | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> Estimate:
    """Inverse propensity scoring: mean of w_i r_i, with w clipped at ``clip`` if given."""
    reward, action, pscore, action_dist = check_logged_with(reward, action, pscore, action_dist)
    terms = _ips_terms(reward, _clipped(_weights(action, action_dist, pscore), check_clip(clip)))
    return _estimate([terms], n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)[0]


def snips(
    *,
    reward: np.ndarray,
    action: np.ndarray,
    action_dist: np.ndarray,
    pscore: np.ndarray,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> Estimate:
    """Self-normalised IPS: sum w_i r_i / sum w_i (NaN if the weights sum to zero)."""
    reward, action, pscore, action_dist = check_logged_with(reward, action, pscore, action_dist)
    terms = _snips_terms(reward, _weights(action, action_dist, pscore))
    return _estimate([terms], n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)[0]


def dm(
    *,
    action_dist: np.ndarray,
    estimated_rewards: np.ndarray,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> Estimate:
    """Direct method: mean over rows of sum_a pi(a|x_i) q(x_i, a), the reward model's view."""
    action_dist = check_action_dist(action_dist, "action_dist", None)
    q = check_estimated_rewards(estimated_rewards, action_dist.shape)
    terms = _dm_terms(action_dist, q)
    return _estimate([terms], n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)[0]


def dr(
    *,
    reward: np.ndarray,
    action: np.ndarray,
    action_dist: np.ndarray,
    pscore: np.ndarray,
    estimated_rewards: np.ndarray,
    clip: float | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> Estimate:
    """Doubly robust: DM plus the IPS-weighted residual w_i (r_i - q(x_i, a_i))."""
    reward, action, pscore, action_dist = check_logged_with(reward, action, pscore, action_dist)
    q = check_estimated_rewards(estimated_rewards, action_dist.shape)
    w = _clipped(_weights(action, action_dist, pscore), check_clip(clip))
    terms = _dr_terms(reward, action, action_dist, q, w)
    return _estimate([terms], n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)[0]


def evaluate_policies(
    *,
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    policies: Mapping[str, np.ndarray],
    estimated_rewards: np.ndarray | None = None,
    estimators: Sequence[str] | None = None,
    clip: float | None = None,
    n_bootstrap: int = 200,
    alpha: float = 0.05,
    random_state: RandomState = None,
) -> OPETable:
    """Estimate every policy in ``policies`` (name -> action_dist) with every estimator.

    ``estimators`` defaults to all four when ``estimated_rewards`` is given and to IPS and SNIPS
    otherwise. All rows share one bootstrap, so the intervals are comparable across policies.
    """
    reward, action, pscore = check_logged(reward, action, pscore)
    n = reward.shape[0]
    if not policies:
        raise InvalidInput("policies: give at least one policy to evaluate")
    if estimators is None:
        estimators = ESTIMATORS if estimated_rewards is not None else ("ips", "snips")
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown or not estimators:
        raise InvalidInput(f"estimators: {unknown or 'none'} given; choose from {ESTIMATORS}")
    if estimated_rewards is None and _NEEDS_REWARD_MODEL & set(estimators):
        raise InvalidInput("estimated_rewards: required by the dm and dr estimators")
    clip = check_clip(clip)

    dists = {
        name: check_action_dist(dist, f"policies[{name!r}]", n) for name, dist in policies.items()
    }
    shapes = {dist.shape for dist in dists.values()}
    if len(shapes) > 1:
        raise InvalidInput(f"policies: distributions differ in shape {sorted(shapes)}")
    shape = shapes.pop()
    check_action_in_range(action, shape[1])
    q = None if estimated_rewards is None else check_estimated_rewards(estimated_rewards, shape)

    terms: list[_Terms] = []
    labels: list[tuple[str, float]] = []
    for name, dist in dists.items():
        w = _weights(action, dist, pscore)
        wc = _clipped(w, clip)
        ips_terms = _ips_terms(reward, wc)
        for est in estimators:
            if est == "ips":
                terms.append(ips_terms)
            elif est == "snips":
                # Unclipped, SNIPS shares its numerator with IPS: one fewer bootstrap row.
                shared = _Terms("snips", ips_terms.num, w, ips_terms.ess)
                terms.append(shared if clip is None else _snips_terms(reward, w))
            elif q is not None:
                terms.append(
                    _dm_terms(dist, q) if est == "dm" else _dr_terms(reward, action, dist, q, wc)
                )
            labels.append((name, max_weight(wc if est in ("ips", "dr") else w)))
    estimates = _estimate(terms, n_bootstrap=n_bootstrap, alpha=alpha, random_state=random_state)
    return OPETable(
        tuple(PolicyEstimate(p, e, mw) for (p, mw), e in zip(labels, estimates, strict=True))
    )


# ---------------------------------------------------------------------------------------------
# Per-row terms and the shared bootstrap


@dataclass(frozen=True, slots=True)
class _Terms:
    """An estimator as mean(num) / mean(den); ``den`` None means a plain mean."""

    name: str
    num: np.ndarray
    den: np.ndarray | None
    ess: float


def _ips_terms(reward: np.ndarray, w: np.ndarray) -> _Terms:
    return _Terms("ips", w * reward, None, effective_sample_size(w))


def _snips_terms(reward: np.ndarray, w: np.ndarray) -> _Terms:
    return _Terms("snips", w * reward, w, effective_sample_size(w))


def _dm_terms(action_dist: np.ndarray, q: np.ndarray) -> _Terms:
    return _Terms("dm", np.einsum("ij,ij->i", action_dist, q), None, float(q.shape[0]))


def _dr_terms(
    reward: np.ndarray, action: np.ndarray, action_dist: np.ndarray, q: np.ndarray, w: np.ndarray
) -> _Terms:
    q_logged = q[np.arange(reward.shape[0]), action]
    direct = np.einsum("ij,ij->i", action_dist, q)
    return _Terms("dr", direct + w * (reward - q_logged), None, effective_sample_size(w))


def _estimate(
    terms: Sequence[_Terms], *, n_bootstrap: int, alpha: float, random_state: RandomState
) -> list[Estimate]:
    """Point estimates and percentile intervals for all ``terms`` from one shared bootstrap."""
    check_bootstrap(n_bootstrap, alpha)
    rng = np.random.default_rng(random_state)
    # Distinct arrays only: IPS and SNIPS may share a numerator, SNIPS's weights are its den.
    slot: dict[int, int] = {}
    rows: list[np.ndarray] = []
    for t in terms:
        for arr in (t.num, t.den):
            if arr is not None and id(arr) not in slot:
                slot[id(arr)] = len(rows)
                rows.append(arr)
    matrix = np.vstack(rows)
    n = matrix.shape[1]
    point = matrix.mean(axis=1)
    boot = _bootstrap_means(matrix, n_bootstrap, rng)
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in terms:
            i = slot[id(t.num)]
            if t.den is None:
                value, draws = point[i], boot[:, i]
            else:
                j = slot[id(t.den)]
                value = point[i] / point[j] if point[j] > 0 else np.nan
                draws = np.where(boot[:, j] > 0, boot[:, i] / boot[:, j], np.nan)
            low, high = _percentiles(draws, alpha)
            out.append(Estimate(t.name, float(value), low, high, float(alpha), n, t.ess))
    return out


def _bootstrap_means(matrix: np.ndarray, n_bootstrap: int, rng: np.random.Generator) -> np.ndarray:
    """Means of each row of ``matrix`` (k, n) over ``n_bootstrap`` resamples: (n_bootstrap, k).

    Each resample is a row of an index matrix; counting how often each row was drawn turns the
    k means into one matrix product, so many estimators cost little more than one.
    """
    k, n = matrix.shape
    per_block = max(1, _BLOCK // n)
    out = np.empty((n_bootstrap, k))
    for start in range(0, n_bootstrap, per_block):
        b = min(per_block, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += np.arange(b)[:, None] * n  # each resample counts into its own stretch
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b] = counts @ matrix.T / n
    return out


def _percentiles(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)
