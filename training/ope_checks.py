"""Argument checks for off-policy evaluation, shared by every estimator in :mod:`training.ope`.

Each check names the argument and, where it helps, the first offending row. Logged feedback
follows the array contract described in :mod:`training.ope`; the checks return arrays of the
expected dtype or raise :class:`decisioning.errors.InvalidInput`.
"""

from __future__ import annotations

import numpy as np

from decisioning.errors import InvalidInput

_ROW_SUM_ATOL = 1e-5  # float32 distributions over ~30 actions drift by ~1e-6 when summed


def check_bootstrap(n_bootstrap: int, alpha: float) -> None:
    """Check the bootstrap settings: a positive integer count and a level in (0, 1)."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer):
        raise InvalidInput(f"n_bootstrap: must be an integer, got {n_bootstrap!r}")
    if n_bootstrap < 1:
        raise InvalidInput(f"n_bootstrap: must be at least 1, got {n_bootstrap}")
    if not 0.0 < alpha < 1.0:
        raise InvalidInput(f"alpha: must lie in (0, 1), got {alpha}")


def check_logged(
    reward: np.ndarray, action: np.ndarray, pscore: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check the logged feedback: finite rewards, integer actions and propensities, one per row."""
    reward = check_vector(reward, "reward", None).astype(float, copy=False)
    n = reward.shape[0]
    if n == 0:
        raise InvalidInput("reward: no logged decisions to evaluate on")
    bad = np.flatnonzero(~np.isfinite(reward))
    if bad.size:
        raise InvalidInput(f"reward: not finite at row {bad[0]} ({reward[bad[0]]})")
    return reward, check_action(action, n), check_pscore(pscore, n)


def check_logged_with(
    reward: np.ndarray, action: np.ndarray, pscore: np.ndarray, action_dist: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check the logged feedback and the evaluated policy's distribution against each other."""
    reward, action, pscore = check_logged(reward, action, pscore)
    action_dist = check_action_dist(action_dist, "action_dist", reward.shape[0])
    check_action_in_range(action, action_dist.shape[1])
    return reward, action, pscore, action_dist


def check_vector(x: np.ndarray, name: str, n: int | None) -> np.ndarray:
    """Check that ``name`` is 1-D with ``n`` rows (any length when ``n`` is None)."""
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise InvalidInput(f"{name}: must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InvalidInput(f"{name}: has {arr.shape[0]} rows, the log has {n}")
    return arr


def check_action(action: np.ndarray, n: int | None) -> np.ndarray:
    """Check that ``action`` holds integer action indices, one per row."""
    arr = check_vector(action, "action", n)
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(f"action: must hold integer action indices, got dtype {arr.dtype}")
    return arr


def check_action_in_range(action: np.ndarray, n_actions: int) -> None:
    """Check that every logged action indexes one of ``n_actions`` actions."""
    bad = np.flatnonzero((action < 0) | (action >= n_actions))
    if bad.size:
        raise InvalidInput(
            f"action: index {action[bad[0]]} at row {bad[0]} is outside 0..{n_actions - 1}"
        )


def check_pscore(pscore: np.ndarray, n: int) -> np.ndarray:
    """Check that ``pscore`` holds one logging probability in (0, 1] per row."""
    arr = check_vector(pscore, "pscore", n).astype(float, copy=False)
    bad = np.flatnonzero(~((arr > 0.0) & (arr <= 1.0)))
    if bad.size:
        raise InvalidInput(f"pscore: must lie in (0, 1]; row {bad[0]} is {arr[bad[0]]}")
    return arr


def check_action_dist(dist: np.ndarray, name: str, n: int | None) -> np.ndarray:
    """Check that ``name`` is an (n, n_actions) array of distributions, each summing to 1."""
    arr = np.asarray(dist, dtype=float)
    if arr.ndim != 2:
        raise InvalidInput(f"{name}: must be 2-D (n, n_actions), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise InvalidInput(f"{name}: has {arr.shape[0]} rows, the log has {n}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInput(f"{name}: is empty, shape {arr.shape}")
    sums = arr.sum(axis=1)
    # min() and sum() are NaN-propagating, so one pass each catches NaN, inf and negatives.
    if not (arr.min() >= 0.0) or not np.all(np.isfinite(sums)):
        row = int(np.flatnonzero(~np.all(np.isfinite(arr) & (arr >= 0.0), axis=1))[0])
        raise InvalidInput(f"{name}: row {row} has negative or non-finite probabilities")
    off = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_ATOL)
    if off.size:
        raise InvalidInput(f"{name}: rows must sum to 1; row {off[0]} sums to {sums[off[0]]:.6g}")
    return arr


def check_estimated_rewards(q: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Check that the reward model's predictions are finite and shaped like the distributions."""
    arr = np.asarray(q, dtype=float)
    if arr.shape != shape:
        raise InvalidInput(f"estimated_rewards: shape {arr.shape}, expected {shape}")
    if not np.isfinite(arr.sum()):
        row = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1))[0])
        raise InvalidInput(f"estimated_rewards: row {row} is not finite")
    return arr


def check_clip(clip: float | None) -> float | None:
    """Check that the importance-weight cap is positive, or None for no cap."""
    if clip is not None and not clip > 0.0:
        raise InvalidInput(f"clip: must be a positive weight cap or None, got {clip}")
    return clip
