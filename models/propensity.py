"""The logging-policy model: propensities for history logged without them.

Off-policy evaluation and learning need, for every logged decision, the probability that the
policy of the time gave to the action it took. Legacy campaign history rarely records it, so
:class:`LoggingPolicyEstimator` learns it as a calibrated multinomial classifier of the action
given the context, and :func:`overlap_diagnostics` says whether the log supports learning at
all: which actions were never tried (overall and per segment) and how concentrated the
importance weights are.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

from decisioning.actions import ActionSpace
from decisioning.errors import InvalidInput

_METHODS = ("isotonic", "sigmoid")
_CLASSIFIERS = ("gradient_boosting", "logistic")
_MIN_ROWS_PER_FOLD = 5  # fewer and a calibration fold holds too few of an action to calibrate it

ActionNames = Sequence[str] | ActionSpace


@dataclass(frozen=True, slots=True)
class OverlapReport:
    """How well a log covers the action space, for deciding whether to trust OPE and learning.

    ``ess`` is the effective sample size of the weights 1/pscore, ``max_weight`` the largest of
    those weights normalised to mean 1 (how many average rows the heaviest row counts for),
    ``clipped_share`` the share of propensities at or below the clip floor. Actions are listed
    by name when names were given, by index otherwise; every segment appears in
    ``never_tried_by_segment``, with an empty tuple when it saw every action.
    """

    n: int
    ess: float
    ess_share: float
    max_weight: float
    min_pscore: float
    clipped_share: float
    never_tried: tuple[str | int, ...]
    never_tried_by_segment: dict[Hashable, tuple[str | int, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for logging next to a model's metrics."""
        out = asdict(self)
        out["never_tried"] = list(self.never_tried)
        out["never_tried_by_segment"] = {
            str(k): list(v) for k, v in self.never_tried_by_segment.items()
        }
        return out


def overlap_diagnostics(
    pscore: np.ndarray,
    action: np.ndarray,
    segments: np.ndarray | None = None,
    action_names: ActionNames | None = None,
    *,
    clip: float | None = None,
    n_actions: int | None = None,
) -> OverlapReport:
    """Overlap of a log from its propensities, logged or estimated.

    Parameters
    ----------
    pscore : array of shape (n,)
        Propensity of each logged action, in (0, 1].
    action : int array of shape (n,)
        Index of each logged action.
    segments : array of shape (n,), optional
        A segment label per row; never-tried actions are then also listed per segment.
    action_names : sequence of str or ActionSpace, optional
        Names of the actions by index; sets the number of actions when given.
    clip : float, optional
        The floor the propensities were clipped to, to report the share that hit it.
    n_actions : int, optional
        Size of the action space when no names are given; defaults to the largest index + 1.
    """
    names = _names(action_names)
    if names is not None:
        if n_actions is not None and n_actions != len(names):
            raise InvalidInput(f"action_names: {len(names)} names for {n_actions} actions")
        n_actions = len(names)
    action = _actions(action, n_actions)
    n = action.shape[0]
    k = int(n_actions) if n_actions is not None else int(action.max()) + 1
    pscore = np.asarray(pscore, dtype=float)
    if pscore.shape != (n,):
        raise InvalidInput(f"pscore: shape {pscore.shape}, action has {n} rows")
    bad = np.flatnonzero(~((pscore > 0.0) & (pscore <= 1.0)))
    if bad.size:
        raise InvalidInput(f"pscore: must lie in (0, 1]; row {bad[0]} is {pscore[bad[0]]}")

    w = 1.0 / pscore
    label = (lambda i: names[i]) if names is not None else int
    by_segment: dict[Hashable, tuple[str | int, ...]] = {}
    if segments is not None:
        seg = np.asarray(segments)
        if seg.shape != (n,):
            raise InvalidInput(f"segments: shape {seg.shape}, action has {n} rows")
        codes, labels = pd.factorize(seg, use_na_sentinel=False)
        # One bincount over (segment, action) pairs gives every segment's coverage at once.
        counts = np.bincount(codes * k + action, minlength=len(labels) * k).reshape(-1, k)
        for s, lab in enumerate(labels):
            key = lab.item() if isinstance(lab, np.generic) else lab
            by_segment[key] = tuple(label(i) for i in np.flatnonzero(counts[s] == 0))
    tried = np.bincount(action, minlength=k) > 0
    ess = float(w.sum()) ** 2 / float(np.dot(w, w))
    return OverlapReport(
        n=n,
        ess=ess,
        ess_share=ess / n,
        max_weight=float(w.max() / w.mean()),
        min_pscore=float(pscore.min()),
        clipped_share=float(np.mean(pscore <= clip)) if clip is not None else 0.0,
        never_tried=tuple(label(i) for i in np.flatnonzero(~tried)),
        never_tried_by_segment=by_segment,
    )


class LoggingPolicyEstimator(BaseEstimator):
    """The logging policy as a calibrated classifier of the logged action given the context.

    Actions logged at least ``5 * cv`` times are modelled by the classifier, calibrated one-vs-rest
    with ``CalibratedClassifierCV``; rarer actions are too thin to calibrate, so they get their
    overall logged frequency whatever the context. Actions never logged get probability 0
    (before clipping): the log says nothing about them.

    Parameters
    ----------
    clip : float, default 0.01
        Floor of :meth:`pscore`, bounding importance weights at ``1 / clip``.
    method : {"isotonic", "sigmoid"}, default "isotonic"
        Calibration method; sigmoid is steadier on small logs.
    classifier : {"gradient_boosting", "logistic"}, default "gradient_boosting"
        Gradient boosting recovers the thresholds of rule-based campaign logic; a standardised
        multinomial logistic regression is faster and smoother.
    cv : int, default 3
        Calibration folds.
    max_iter : int, default 100
        Most boosting iterations (early stopping on a validation split usually ends sooner),
        or solver iterations for the logistic regression.
    random_state : int, RandomState or None
        Seeds the folds and the classifier.

    Attributes
    ----------
    n_actions_ : int
    n_features_in_ : int
    action_counts_ : int array of shape (n_actions_,)
    classes_ : int array, the actions the classifier models (empty when it was not needed)
    model_ : CalibratedClassifierCV or None
    """

    def __init__(
        self,
        clip: float = 0.01,
        method: str = "isotonic",
        classifier: str = "gradient_boosting",
        cv: int = 3,
        max_iter: int = 100,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.clip = clip
        self.method = method
        self.classifier = classifier
        self.cv = cv
        self.max_iter = max_iter
        self.random_state = random_state

    def fit(self, X: Any, action: np.ndarray, n_actions: int) -> LoggingPolicyEstimator:
        """Learn the logging policy from contexts ``X`` (n, d) and logged action indices (n,)."""
        self._check_params()
        if isinstance(n_actions, bool) or not isinstance(n_actions, int | np.integer):
            raise InvalidInput(f"n_actions: must be an integer, got {n_actions!r}")
        if n_actions < 1:
            raise InvalidInput(f"n_actions: must be at least 1, got {n_actions}")
        X = self._check_X(X)
        action = _actions(action, int(n_actions))
        if action.shape[0] != X.shape[0]:
            raise InvalidInput(f"action: has {action.shape[0]} rows, X has {X.shape[0]}")
        self.n_features_in_ = X.shape[1]
        self.n_actions_ = int(n_actions)
        self.action_counts_ = np.bincount(action, minlength=self.n_actions_)
        modelled = np.flatnonzero(self.action_counts_ >= _MIN_ROWS_PER_FOLD * self.cv)
        self.model_: CalibratedClassifierCV | None = None
        self.classes_ = np.empty(0, dtype=int)
        if modelled.size >= 2:
            rows = np.isin(action, modelled)
            folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
            self.model_ = CalibratedClassifierCV(self._base(), method=self.method, cv=folds)
            self.model_.fit(X[rows], action[rows])
            self.classes_ = self.model_.classes_.astype(int)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability of each action (n, n_actions_) under the logging policy; rows sum to 1."""
        check_is_fitted(self, "action_counts_")
        X = self._check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise InvalidInput(f"X: has {X.shape[1]} features, fitted with {self.n_features_in_}")
        freq = self.action_counts_ / self.action_counts_.sum()
        proba = np.tile(freq, (X.shape[0], 1))
        if self.model_ is not None:
            # The modelled actions share the mass the rare ones leave, split by the classifier.
            share = freq[self.classes_].sum()
            proba[:, self.classes_] = self.model_.predict_proba(X) * share
        return proba

    def pscore(self, X: Any, action: np.ndarray) -> np.ndarray:
        """Propensity of each logged ``action`` (n,), clipped to [clip, 1]."""
        proba = self.predict_proba(X)
        action = _actions(action, self.n_actions_)
        if action.shape[0] != proba.shape[0]:
            raise InvalidInput(f"action: has {action.shape[0]} rows, X has {proba.shape[0]}")
        return np.clip(proba[np.arange(action.shape[0]), action], self.clip, 1.0)

    def overlap_report(
        self,
        X: Any,
        action: np.ndarray,
        segments: np.ndarray | None = None,
        action_names: ActionNames | None = None,
    ) -> OverlapReport:
        """Overlap of the log ``(X, action)`` under the estimated propensities."""
        return overlap_diagnostics(
            self.pscore(X, action),
            action,
            segments,
            action_names,
            clip=self.clip,
            n_actions=self.n_actions_,
        )

    def _check_params(self) -> None:
        if not 0.0 < self.clip < 1.0:
            raise InvalidInput(f"clip: must lie in (0, 1), got {self.clip}")
        if self.method not in _METHODS:
            raise InvalidInput(f"method: {self.method!r} is not one of {_METHODS}")
        if self.classifier not in _CLASSIFIERS:
            raise InvalidInput(f"classifier: {self.classifier!r} is not one of {_CLASSIFIERS}")
        if not isinstance(self.cv, int) or self.cv < 2:
            raise InvalidInput(f"cv: must be an integer of at least 2, got {self.cv!r}")
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise InvalidInput(f"max_iter: must be a positive integer, got {self.max_iter!r}")

    def _check_X(self, X: Any) -> np.ndarray:
        # Gradient boosting routes missing values itself; the logistic regression cannot.
        allow_nan = "allow-nan" if self.classifier == "gradient_boosting" else True
        try:
            return check_array(X, dtype=float, ensure_all_finite=allow_nan)
        except ValueError as exc:
            raise InvalidInput(f"X: {exc}") from exc

    def _base(self) -> Any:
        if self.classifier == "logistic":
            return make_pipeline(StandardScaler(), LogisticRegression(max_iter=self.max_iter))
        # Propensities need smooth probabilities, not sharp classes: small leaves fit noise
        # features and put near-zero propensities (huge weights) on ordinary rows.
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            early_stopping=True,
            min_samples_leaf=100,
            random_state=self.random_state,
        )


def _names(action_names: ActionNames | None) -> list[str] | None:
    if action_names is None:
        return None
    if isinstance(action_names, ActionSpace):
        return list(action_names.keys)
    return [str(a) for a in action_names]


def _actions(action: np.ndarray, n_actions: int | None) -> np.ndarray:
    arr = np.asarray(action)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise InvalidInput(f"action: must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInput(f"action: must hold integer action indices, got dtype {arr.dtype}")
    hi = n_actions if n_actions is not None else np.iinfo(np.int64).max
    bad = np.flatnonzero((arr < 0) | (arr >= hi))
    if bad.size:
        raise InvalidInput(f"action: index {arr[bad[0]]} at row {bad[0]} is outside 0..{hi - 1}")
    return arr.astype(np.intp, copy=False)
