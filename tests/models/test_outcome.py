"""The outcome model learns expected rewards per action from logged rows."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from decisioning.errors import InvalidInput, LearningError
from models.encoding import BanditBatch
from models.outcome import RewardModel
from tests.models.conftest import SPACE, make_context, make_logged_batch

EMAIL = [i for i, a in enumerate(SPACE) if a.channel.value == "email"]
PUSH = [i for i, a in enumerate(SPACE) if a.channel.value == "push"]


@pytest.fixture(scope="module")
def model(logged_batch):
    return RewardModel(random_state=0).fit(logged_batch)


def _probe(activity: float, n: int = 20, seed: int = 3) -> BanditBatch:
    rng = np.random.default_rng(seed)
    every = np.ones(len(SPACE), dtype=bool)
    return BanditBatch.from_contexts(
        [make_context(rng, eligible=every, activity=activity) for _ in range(n)]
    )


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        RewardModel().predict(_probe(0.5, n=1))


def test_learns_the_planted_effect(model):
    high, low = model.predict(_probe(1.0)), model.predict(_probe(0.0))
    assert high.shape == (20, len(SPACE))
    # e-mail converts with activity (0.62 vs 0.02), push does not (0.25 either way)
    assert high[:, EMAIL].mean() > low[:, EMAIL].mean() + 0.3
    assert high[:, EMAIL].mean() > high[:, PUSH].mean()
    assert low[:, EMAIL].mean() < low[:, PUSH].mean()
    assert abs(high[:, PUSH].mean() - low[:, PUSH].mean()) < 0.1


def test_classifier_is_chosen_for_conversions_and_scored_out_of_sample(model):
    assert model.task_ == "binary"
    metrics = model.evaluate(make_logged_batch(np.random.default_rng(11), 800))
    assert set(metrics) == {"auc", "log_loss", "brier"}
    assert metrics["auc"] > 0.65
    assert metrics["log_loss"] < 0.6
    assert model.score(make_logged_batch(np.random.default_rng(11), 800)) == metrics["auc"]


def test_regression_for_revenue_rewards(logged_batch):
    revenue = dataclasses.replace(logged_batch, reward=logged_batch.reward * 40.0)
    model = RewardModel(n_estimators=50).fit(revenue)
    assert model.task_ == "regression"
    metrics = model.evaluate(revenue)
    assert set(metrics) == {"rmse", "mae", "r2"} and metrics["r2"] > 0.1
    assert model.predict(_probe(1.0))[:, EMAIL].mean() > 15.0


@pytest.mark.parametrize(
    ("change", "params", "error", "message"),
    [
        ({"reward": np.full(3000, 0.5)}, {"task": "binary"}, InvalidInput, "all 0 or 1"),
        ({"reward": np.zeros(3000)}, {}, LearningError, "every logged reward is the same"),
        ({}, {"task": "poisson"}, InvalidInput, "task must be one of"),
        ({"action": None}, {}, InvalidInput, "no logged action"),
    ],
)
def test_bad_training_data_is_rejected(logged_batch, change, params, error, message):
    with pytest.raises(error, match=message):
        RewardModel(**params).fit(dataclasses.replace(logged_batch, **change))


def test_sample_weight_moves_the_fit(logged_batch):
    with pytest.raises(InvalidInput, match="sample_weight must be 3000 non-negative"):
        RewardModel().fit(logged_batch, sample_weight=np.ones(5))
    is_email = np.isin(logged_batch.action, EMAIL)
    weight = np.where(is_email & (logged_batch.reward == 1), 5.0, 1.0)
    plain = RewardModel(n_estimators=60).fit(logged_batch)
    heavy = RewardModel(n_estimators=60).fit(logged_batch, sample_weight=weight)
    probe = _probe(0.5)
    assert heavy.predict(probe)[:, EMAIL].mean() > plain.predict(probe)[:, EMAIL].mean() + 0.1


def test_single_context_and_logged_predictions_agree_with_the_batch(model, logged_batch):
    probe = _probe(0.7, n=3)
    assert np.allclose(model.predict_context(probe.context(1)), model.predict(probe)[1])
    part = logged_batch.select(np.arange(10))
    full = model.predict(part)
    assert np.allclose(model.predict_logged(part), full[np.arange(10), part.action])


def test_batch_scores_the_eligible_and_logged_actions_only(model, logged_batch):
    part = logged_batch.select(np.arange(200))
    scored = model.predict(part)
    needed = part.eligible.copy()
    needed[np.arange(len(part)), part.action] = True
    assert (~needed).any()  # some actions are neither eligible nor logged
    for i in range(0, 200, 37):
        context = part.context(i)
        every = model.predict_context(dataclasses.replace(context, eligible=needed[i] | True))
        assert np.allclose(scored[i, needed[i]], every[needed[i]])
        assert np.all(scored[i, ~needed[i]] == 0.0)
        single = model.predict_context(context)
        assert np.allclose(single[context.eligible], every[context.eligible])
        assert np.all(single[~context.eligible] == 0.0)


def test_feature_importances_name_the_design_columns(model):
    imp = model.feature_importances()
    assert len(imp) == model.n_features_in_
    assert imp.is_monotonic_decreasing
    assert {"activity", "channel=email"} & set(imp.index[:5])


def test_pickles_and_clones(model):
    probe = _probe(0.3, n=4)
    again = pickle.loads(pickle.dumps(model))
    assert np.array_equal(again.predict(probe), model.predict(probe))
    fresh = clone(model)
    assert fresh.get_params() == model.get_params() and not hasattr(fresh, "booster_")
