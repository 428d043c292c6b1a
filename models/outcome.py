"""The outcome model: expected reward of every action for a customer, from logged outcomes.

A LightGBM model on :func:`~models.encoding.row_matrix` rows of the *logged* actions learns
E[reward | context, action]; predicting on every action's row then gives the counterfactual
value of each choice. When every logged reward is 0 or 1 (a conversion objective), the model is
a classifier and predicts the conversion probability (calibrated by the log-loss objective);
otherwise it is a regressor of the reward's value. Either way it predicts the *gross* reward:
contact costs are known and netted out by the policy (:class:`models.greedy.GreedyPolicy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error, roc_auc_score
from sklearn.utils.validation import check_is_fitted

from decisioning.errors import InvalidInput, LearningError
from decisioning.policy import DecisionContext
from models.compiled import CompiledTrees
from models.encoding import (
    BanditBatch,
    FeatureSpec,
    context_rows,
    pair_matrix,
    row_matrix,
    row_names,
)

_TASKS = ("auto", "binary", "regression")
_CHUNK_ROWS = 200_000  # rows of the (context, action) design matrix encoded at a time
_PARALLEL_ROWS = 2_000  # rows from which a prediction runs on every core


class RewardModel(BaseEstimator):
    """Predicts the expected gross reward of each action in a context (LightGBM).

    Parameters
    ----------
    task : {"auto", "binary", "regression"}
        "binary" fits a classifier of conversion (rewards must be 0/1), "regression" a
        regressor of the reward; "auto" picks "binary" when every reward is 0 or 1.
    n_estimators, learning_rate, num_leaves, min_child_samples, subsample, colsample_bytree,
    reg_lambda : LightGBM hyperparameters. The defaults are conservative (small leaves, 50 rows
        a leaf, row and column subsampling): logged rewards are rare and noisy, and an
        overfitted model sends the greedy policy after noise.
    max_categories : int
        Most frequent categories kept per categorical attribute.
    n_jobs : int
        Training threads (prediction always uses one: it serves one customer at a time).
    random_state : int
        Seed of LightGBM's sampling.
    """

    def __init__(
        self,
        *,
        task: str = "auto",
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 50,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 1.0,
        max_categories: int = 32,
        n_jobs: int = 1,
        random_state: int = 0,
    ) -> None:
        self.task = task
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.max_categories = max_categories
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, batch: BanditBatch, sample_weight: np.ndarray | None = None) -> RewardModel:
        """Learn E[reward | context, logged action] from a logged batch.

        ``sample_weight`` (n,) reweights rows, e.g. by 1/pscore to correct for the logging
        policy's preferences; None weighs every row the same.
        """
        if self.task not in _TASKS:
            raise InvalidInput(f"task must be one of {_TASKS}, got {self.task!r}")
        action, reward, _ = batch.feedback()
        if len(batch) < 2:
            raise LearningError(f"the outcome model needs at least 2 logged rows, got {len(batch)}")
        binary = bool(np.isin(reward, (0.0, 1.0)).all())
        task = ("binary" if binary else "regression") if self.task == "auto" else self.task
        if task == "binary":
            if not binary:
                raise InvalidInput("task='binary' needs rewards that are all 0 or 1")
            if reward.min() == reward.max():
                raise LearningError("every logged reward is the same: no outcome to learn")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=float)
            if sample_weight.shape != (len(batch),) or np.any(~(sample_weight >= 0)):
                raise InvalidInput(
                    f"sample_weight must be {len(batch)} non-negative numbers, "
                    f"got shape {sample_weight.shape}"
                )
        self.spec_ = FeatureSpec.from_batch(batch, max_categories=self.max_categories)
        x = row_matrix(batch, self.spec_, actions=action)
        params: dict[str, Any] = {
            "n_estimators": self.n_estimators,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "subsample": self.subsample,
            "subsample_freq": 1 if self.subsample < 1.0 else 0,
            "colsample_bytree": self.colsample_bytree,
            "reg_lambda": self.reg_lambda,
            "n_jobs": self.n_jobs,
            "random_state": self.random_state,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }
        estimator = (
            lgb.LGBMClassifier(**params) if task == "binary" else lgb.LGBMRegressor(**params)
        )
        estimator.fit(
            x, reward.astype(int) if task == "binary" else reward, sample_weight=sample_weight
        )
        self.task_ = task
        self.estimator_ = estimator
        self.booster_ = estimator.booster_
        self.feature_names_ = row_names(self.spec_)
        self.n_features_in_ = x.shape[1]
        self._predictors: dict[int, Any] = {}
        return self

    def _predict_rows(self, x: np.ndarray) -> np.ndarray:
        # Booster.predict rebuilds its predictor on every call, which is most of the cost of
        # scoring one customer's 31 actions; a cached one-thread predictor skips that. Large
        # batches (a segment's decisions, off-policy evaluation) are scored on every core.
        compiled = self.__dict__.get("_compiled")
        if compiled is not None:
            return compiled.predict(x)
        threads = 1 if len(x) < _PARALLEL_ROWS else 0
        predictors = self.__dict__.setdefault("_predictors", {})
        predictor = predictors.get(threads)
        if predictor is None:
            try:
                from lightgbm.basic import _InnerPredictor

                predictor = _InnerPredictor.from_booster(self.booster_, {"num_threads": threads})
            except (ImportError, AttributeError, TypeError):
                predictor = False
            predictors[threads] = predictor
        if predictor is False:
            return np.asarray(self.booster_.predict(x, num_threads=threads), dtype=float)
        return np.asarray(predictor.predict(x), dtype=float)

    def compile(self, cache_dir: str | Path | None = None) -> bool:
        """Score with the trees compiled to native code from now on (:mod:`models.compiled`).

        True when compiled; False leaves the model on LightGBM (same predictions, slower).
        Compiled code is not pickled: a loaded model is compiled again where it serves.
        """
        check_is_fitted(self)
        self._compiled = CompiledTrees.compile(self.booster_, cache_dir)
        return self._compiled is not None

    def predict(self, batch: BanditBatch) -> np.ndarray:
        """Expected gross reward of the actions in every context, shape (n, n_actions).

        Every eligible action is scored, and the logged one when the batch was logged; an
        action that is neither, which no policy may take there, is 0 without being scored.
        """
        check_is_fitted(self)
        n, n_actions = len(batch), batch.n_actions
        out = np.zeros((n, n_actions), dtype=float)
        step = max(1, _CHUNK_ROWS // n_actions)
        for start in range(0, n, step):
            part = batch if n <= step else batch.select(np.arange(start, min(n, start + step)))
            needed = np.asarray(part.eligible, dtype=bool).copy()
            if part.action is not None:
                needed[np.arange(len(part)), part.action] = True
            rows, actions = np.nonzero(needed)
            if len(rows):
                scores = self._predict_rows(pair_matrix(part, self.spec_, rows, actions))
                out[start + rows, actions] = scores
        return out

    def predict_context(self, context: DecisionContext) -> np.ndarray:
        """Expected gross reward of each eligible action for one context, shape (n_actions,);
        the actions the context does not allow are 0, not scored (as in :meth:`predict`)."""
        check_is_fitted(self)
        eligible = np.flatnonzero(np.asarray(context.eligible, dtype=bool))
        out = np.zeros(len(self.spec_.action_keys), dtype=float)
        if len(eligible):
            out[eligible] = self._predict_rows(context_rows(context, self.spec_, eligible))
        return out

    def predict_logged(self, batch: BanditBatch) -> np.ndarray:
        """Expected reward of the logged action of each row, shape (n,)."""
        check_is_fitted(self)
        action, _, _ = batch.feedback()
        return self._predict_rows(row_matrix(batch, self.spec_, actions=action))

    def evaluate(self, batch: BanditBatch) -> dict[str, float]:
        """Fit metrics on the logged actions of ``batch``.

        A classifier reports ``auc``, ``log_loss`` and ``brier``; a regressor ``rmse``,
        ``mae`` and ``r2``. AUC is NaN when the batch holds a single outcome.
        """
        _, reward, _ = batch.feedback()
        pred = self.predict_logged(batch)
        if self.task_ == "binary":
            y = reward.astype(int)
            p = np.clip(pred, 1e-7, 1 - 1e-7)
            auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
            return {
                "auc": auc,
                "log_loss": float(log_loss(y, p, labels=[0, 1])),
                "brier": float(np.mean((p - y) ** 2)),
            }
        var = float(np.var(reward))
        mse = float(mean_squared_error(reward, pred))
        return {
            "rmse": mse**0.5,
            "mae": float(mean_absolute_error(reward, pred)),
            "r2": 1.0 - mse / var if var > 0 else float("nan"),
        }

    def score(self, batch: BanditBatch) -> float:
        """One number, higher is better: AUC for a classifier, R^2 for a regressor."""
        metrics = self.evaluate(batch)
        return metrics["auc"] if self.task_ == "binary" else metrics["r2"]

    def feature_importances(self, importance_type: str = "gain") -> pd.Series:
        """Importance of each design-matrix column ("gain" or "split"), largest first."""
        check_is_fitted(self)
        values = self.booster_.feature_importance(importance_type=importance_type)
        series = pd.Series(values, index=list(self.feature_names_), name=importance_type)
        return series.sort_values(ascending=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_predictor", None)
        state.pop("_compiled", None)
        state["_predictors"] = {}  # ctypes handles: rebuilt on first use after unpickling
        return state

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "booster_")
