"""The logging-policy model and the overlap diagnostics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from decisioning.actions import ActionSpace
from decisioning.errors import InvalidInput
from models.propensity import LoggingPolicyEstimator, OverlapReport, overlap_diagnostics

# The legacy campaign logic: by a context bit, a mix of three of five actions; 3 and 4 never.
LOGGING = np.array([[0.6, 0.3, 0.1, 0.0, 0.0], [0.2, 0.2, 0.6, 0.0, 0.0]])
N_ACTIONS = 5


def legacy_log(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contexts (bit, noise), the bit alone, and actions drawn from ``LOGGING``."""
    rng = np.random.default_rng(seed)
    bit = rng.integers(0, 2, n)
    X = np.column_stack([bit, rng.normal(size=n)])
    action = (LOGGING[bit].cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return X, bit, action


@pytest.fixture(scope="module")
def log() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return legacy_log(3_000, seed=0)


@pytest.fixture(scope="module", params=["gradient_boosting", "logistic"])
def fitted(request: pytest.FixtureRequest, log: Any) -> LoggingPolicyEstimator:
    X, _, action = log
    model = LoggingPolicyEstimator(classifier=request.param, max_iter=50, random_state=0)
    return model.fit(X, action, N_ACTIONS)


def test_recovers_the_logging_policy(fitted: LoggingPolicyEstimator, log: Any) -> None:
    X, bit, _ = log
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), N_ACTIONS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    for b in (0, 1):
        # Averaged over the noise feature, the estimate matches the campaign logic.
        np.testing.assert_allclose(proba[bit == b].mean(axis=0), LOGGING[b], atol=0.05)


def test_never_tried_actions_get_zero_before_clipping(fitted: LoggingPolicyEstimator) -> None:
    proba = fitted.predict_proba(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert np.all(proba[:, 3:] == 0.0)
    assert fitted.pscore(np.array([[0.0, 0.0]]), np.array([4]))[0] == fitted.clip


def test_pscore_is_the_clipped_probability_of_the_logged_action(
    fitted: LoggingPolicyEstimator, log: Any
) -> None:
    X, _, action = log
    p = fitted.pscore(X, action)
    raw = fitted.predict_proba(X)[np.arange(len(X)), action]
    np.testing.assert_allclose(p, np.clip(raw, 0.01, 1.0))
    assert p.min() >= 0.01 and p.max() <= 1.0


def test_logistic_recovers_each_context(log: Any) -> None:
    X, _, action = log
    model = LoggingPolicyEstimator(classifier="logistic", method="sigmoid", random_state=0)
    proba = model.fit(X, action, N_ACTIONS).predict_proba(np.array([[0.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(proba, LOGGING, atol=0.06)


def test_gradient_boosting_finds_a_threshold_rule() -> None:
    # Campaign rule: recently active customers (recency < 7 days) get mostly email (action 1).
    rng = np.random.default_rng(1)
    recency = rng.uniform(0, 30, 4_000)
    p_email = np.where(recency < 7, 0.8, 0.1)
    action = (rng.random(4_000) < p_email).astype(int)
    model = LoggingPolicyEstimator(method="sigmoid", max_iter=50, random_state=0)
    model.fit(recency[:, None], action, 2)
    proba = model.predict_proba(np.array([[2.0], [20.0]]))
    np.testing.assert_allclose(proba[:, 1], [0.8, 0.1], atol=0.06)


def test_rare_actions_get_their_logged_frequency(log: Any) -> None:
    X, _, action = log
    action = action.copy()
    action[:4] = 3  # four sends of action 3: too few to calibrate over 3 folds
    model = LoggingPolicyEstimator(classifier="logistic", random_state=0).fit(X, action, 5)
    proba = model.predict_proba(X[:10])
    np.testing.assert_allclose(proba[:, 3], 4 / len(X))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_) == [0, 1, 2]


def test_a_single_logged_action_is_certain() -> None:
    X = np.random.default_rng(0).normal(size=(50, 2))
    model = LoggingPolicyEstimator().fit(X, np.full(50, 2), 4)
    assert model.model_ is None
    np.testing.assert_array_equal(model.predict_proba(X[:3]), np.tile([0, 0, 1.0, 0], (3, 1)))


def test_same_seed_same_model(log: Any) -> None:
    X, _, action = log
    a, b = (LoggingPolicyEstimator(max_iter=20, random_state=7).fit(X, action, 5) for _ in "ab")
    np.testing.assert_array_equal(a.predict_proba(X[:50]), b.predict_proba(X[:50]))


def test_follows_the_estimator_contract() -> None:
    model = LoggingPolicyEstimator(clip=0.05, method="sigmoid", random_state=3)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "model_")
    with pytest.raises(NotFittedError):
        model.predict_proba(np.zeros((1, 2)))


X_SMALL = np.arange(40.0).reshape(20, 2)
A_SMALL = np.tile([0, 1], 10)

BAD_FITS = [
    ({"clip": 0.0}, {}, r"clip: must lie in \(0, 1\)"),
    ({"method": "beta"}, {}, r"method: 'beta'"),
    ({"classifier": "forest"}, {}, r"classifier: 'forest'"),
    ({"cv": 1}, {}, r"cv: must be an integer of at least 2"),
    ({"max_iter": 0}, {}, r"max_iter: must be a positive"),
    ({}, {"n_actions": 0}, r"n_actions: must be at least 1"),
    ({}, {"n_actions": 1}, r"action: index 1 at row 1 is outside 0..0"),
    ({}, {"action": A_SMALL[:5]}, r"action: has 5 rows, X has 20"),
    ({}, {"action": A_SMALL.astype(float)}, r"action: must hold integer"),
    ({}, {"X": np.full((20, 2), np.inf)}, r"X: "),
]


@pytest.mark.parametrize(("params", "args", "match"), BAD_FITS)
def test_bad_fit_arguments_name_the_argument(
    params: dict[str, Any], args: dict[str, Any], match: str
) -> None:
    kwargs = {"X": X_SMALL, "action": A_SMALL, "n_actions": 2} | args
    with pytest.raises(InvalidInput, match=match):
        LoggingPolicyEstimator(**params).fit(**kwargs)


def test_predicting_with_the_wrong_features_is_refused() -> None:
    model = LoggingPolicyEstimator(classifier="logistic").fit(X_SMALL, A_SMALL, 2)
    with pytest.raises(InvalidInput, match="X: has 3 features, fitted with 2"):
        model.predict_proba(np.zeros((1, 3)))
    with pytest.raises(InvalidInput, match="action: has 1 rows, X has 2"):
        model.pscore(X_SMALL[:2], A_SMALL[:1])


# ---------------------------------------------------------------------------------------------
# Overlap


def test_overlap_diagnostics_by_hand() -> None:
    pscore = np.array([0.5, 0.25, 0.25, 1.0])
    action = np.array([0, 1, 0, 0])
    segments = np.array(["new", "new", "loyal", "loyal"])
    report = overlap_diagnostics(pscore, action, segments, ["none", "email", "sms"], clip=0.25)
    # Weights 1/pscore = [2, 4, 4, 1]: ESS = 11^2 / (4 + 16 + 16 + 1) = 121 / 37;
    # normalised to mean 11/4, the largest is 4 / (11/4) = 16/11.
    assert report.n == 4
    assert report.ess == pytest.approx(121 / 37)
    assert report.ess_share == pytest.approx(121 / 37 / 4)
    assert report.max_weight == pytest.approx(16 / 11)
    assert report.min_pscore == 0.25
    assert report.clipped_share == 0.5  # two of four propensities sit on the floor
    assert report.never_tried == ("sms",)
    assert report.never_tried_by_segment == {"new": ("sms",), "loyal": ("email", "sms")}
    as_dict = report.to_dict()
    assert as_dict["never_tried_by_segment"] == {"new": ["sms"], "loyal": ["email", "sms"]}


def test_overlap_diagnostics_with_indices_and_an_action_space() -> None:
    space = ActionSpace.build()
    action = np.array([0, 0, 1])
    report = overlap_diagnostics(np.ones(3), action, np.array([7, 7, 8]), space)
    assert len(report.never_tried) == len(space) - 2
    assert report.never_tried[0] == space[2].key
    assert set(report.never_tried_by_segment) == {7, 8}
    assert space[1].key in report.never_tried_by_segment[7]
    assert space[0].key in report.never_tried_by_segment[8]
    by_index = overlap_diagnostics(np.ones(3), action, n_actions=4)
    assert by_index.never_tried == (2, 3) and by_index.clipped_share == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pscore": np.array([0.5, 0.0])}, r"pscore: must lie in \(0, 1\]; row 1"),
        ({"pscore": np.ones(3)}, r"pscore: shape \(3,\)"),
        ({"segments": np.array(["a"])}, r"segments: shape"),
        ({"action_names": ["none"]}, r"action: index 1 at row 1 is outside 0..0"),
        ({"action_names": ["a", "b"], "n_actions": 3}, r"action_names: 2 names for 3"),
    ],
)
def test_bad_overlap_arguments(kwargs: dict[str, Any], match: str) -> None:
    args = {"pscore": np.array([0.5, 0.5]), "action": np.array([0, 1])} | kwargs
    with pytest.raises(InvalidInput, match=match):
        overlap_diagnostics(**args)


def test_overlap_report_of_the_fitted_model(fitted: LoggingPolicyEstimator, log: Any) -> None:
    X, bit, action = log
    report = fitted.overlap_report(X, action, segments=bit, action_names=list("abcde"))
    assert isinstance(report, OverlapReport)
    assert report.never_tried == ("d", "e")
    assert report.never_tried_by_segment == {0: ("d", "e"), 1: ("d", "e")}
    # With the true propensities, weights 1/p have mean 3 (three actions tried per context) and
    # mean square (1/0.6 + 1/0.3 + 1/0.1 + 1/0.2 + 1/0.2 + 1/0.6) / 2 = 13.33: ESS share 9/13.33.
    truth = overlap_diagnostics(LOGGING[bit, action], action, n_actions=N_ACTIONS)
    assert truth.ess_share == pytest.approx(9 / (40 / 3), abs=0.03)
    assert report.ess_share == pytest.approx(truth.ess_share, abs=0.1)
    assert 1.0 < report.max_weight < 20.0
    assert report.clipped_share == 0.0
