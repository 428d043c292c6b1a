"""Fitting the candidates: the greedy policy's margin, fixed or tuned off-policy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.encoding import BanditBatch
from models.greedy import GreedyPolicy
from tests.models.conftest import make_logged_batch
from training.fit import LearnerSettings, fit_candidates, select_margin, tune_margin

#: a small, quick reward model for a log of a few thousand rows
SMALL = LearnerSettings(n_estimators=80, learning_rate=0.1, num_leaves=7, min_child_samples=20)


@pytest.fixture(scope="module")
def planted() -> BanditBatch:
    """Contacts that pay (the planted world's e-mail and push), decided in time order."""
    batch = make_logged_batch(np.random.default_rng(11), 4000)
    return replace(batch, now=np.arange(len(batch), dtype=float))


def test_a_model_that_sees_who_gains_keeps_contacting(planted: BanditBatch) -> None:
    tuned = tune_margin(planted, SMALL)
    assert tuned is not None
    margin, info = tuned
    assert np.isfinite(margin)
    assert info["greedy_margin_contact_share"] > 0.5
    assert info["greedy_margin_validation_rows"] == pytest.approx(0.2 * len(planted), abs=2)


def test_a_model_that_overrates_contacts_learns_to_do_nothing() -> None:
    rng = np.random.default_rng(3)
    n, n_actions = 4000, 6
    eligible = np.ones((n, n_actions), dtype=bool)
    action = rng.integers(0, n_actions, n)
    pscore = np.full(n, 1.0 / n_actions)
    # The model predicts every contact worth about 1 more than doing nothing; the log says a
    # contact costs 1 and changes nothing else.
    values = np.zeros((n, n_actions))
    values[:, 1:] = 1.0 + rng.normal(0.0, 0.3, (n, n_actions - 1))
    net = (rng.random(n) < 0.3).astype(float) - (action > 0)
    margin, info = select_margin(values, eligible, action=action, net=net, pscore=pscore)
    assert margin > values[:, 1:].max() * 0.5
    assert info["greedy_margin_contact_share"] < 0.05
    assert info["greedy_margin_dr_gain"] > 0.5


def test_a_model_that_is_right_keeps_its_contacts() -> None:
    rng = np.random.default_rng(4)
    n, n_actions = 4000, 6
    eligible = np.ones((n, n_actions), dtype=bool)
    action = rng.integers(0, n_actions, n)
    pscore = np.full(n, 1.0 / n_actions)
    # Half the customers gain 1 from action 1; the model knows who.
    responds = rng.random(n) < 0.5
    values = np.zeros((n, n_actions))
    values[:, 1] = np.where(responds, 1.0, -0.2)
    values[:, 2:] = -0.2
    net = (rng.random(n) < 0.2) + np.where((action == 1) & responds, 1.0, 0.0) - 0.2 * (action > 0)
    margin, info = select_margin(values, eligible, action=action, net=net, pscore=pscore)
    assert margin == 0.0
    assert info["greedy_margin_contact_share"] == pytest.approx(responds.mean())


def test_too_little_history_is_not_tuned(planted: BanditBatch) -> None:
    assert tune_margin(planted.select(np.arange(600)), SMALL) is None


def test_a_fixed_margin_is_used_as_given(planted: BanditBatch) -> None:
    fixed = fit_candidates(planted, replace(SMALL, greedy_margin=0.3), with_vw=False)
    greedy = fixed.policies["lightgbm_greedy"]
    assert isinstance(greedy, GreedyPolicy) and greedy.margin == 0.3
    assert fixed.tuning == {} and "greedy_margin" not in fixed.seconds
    tuned = fit_candidates(planted, replace(SMALL, greedy_margin=None), with_vw=False)
    assert tuned.tuning["greedy_margin"] == tuned.policies["lightgbm_greedy"].margin


def test_the_margin_holds_contacts_back(planted: BanditBatch) -> None:
    candidates = fit_candidates(planted, SMALL, with_vw=False)
    model = candidates.reward_model
    loose, strict = GreedyPolicy(model), GreedyPolicy(model, margin=1e6)
    assert loose.action_distributions(planted)[:, 0].mean() < 0.5
    assert np.all(strict.action_distributions(planted)[:, 0] == 1.0)
    # One context at a time agrees with the batch.
    context = planted.context(0)
    for policy in (loose, strict):
        assert np.allclose(
            policy.action_distribution(context), policy.action_distributions(planted)[0]
        )
    with pytest.raises(ValueError, match="margin"):
        GreedyPolicy(model, margin=-1.0)
