"""The VW bandit: exploration, online learning, and exact save/load and pickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from decisioning.errors import InvalidInput
from decisioning.policy import validate_distribution
from models.encoding import BanditBatch
from models.vw_bandit import VWBandit
from tests.models.conftest import SPACE, make_context, make_logged_batch

EMAIL = [i for i, a in enumerate(SPACE) if a.channel.value == "email"]
OTHER_PAID = [i for i, a in enumerate(SPACE) if a.channel.value in ("sms", "whatsapp")]


@pytest.fixture(scope="module")
def small_log():
    return make_logged_batch(np.random.default_rng(5), 400)


@pytest.fixture(scope="module")
def bandit(logged_batch):
    return VWBandit(exploration="squarecb", seed=1).fit(logged_batch)


def _probes(n: int = 6, seed: int = 9, **features: float):
    rng = np.random.default_rng(seed)
    return [make_context(rng, eligible_share=0.7, **features) for _ in range(n)]


def test_learns_the_planted_effect(bandit):
    every = np.ones(len(SPACE), dtype=bool)
    rng = np.random.default_rng(4)
    active = BanditBatch.from_contexts(
        [make_context(rng, eligible=every, activity=1.0) for _ in range(20)]
    )
    values = bandit.values(active)
    assert values[:, EMAIL].mean() > values[:, OTHER_PAID].mean() + 0.1
    dist = bandit.action_distributions(active)
    assert dist[:, EMAIL].sum(axis=1).mean() > 0.5


def test_distribution_covers_only_eligible_actions(bandit):
    for ctx in _probes():
        dist = bandit.action_distribution(ctx)
        validate_distribution(dist, ctx.eligible)
        assert np.all(dist[ctx.eligible] > 0)  # SquareCB keeps every eligible action possible


def test_single_context_values_score_the_eligible_actions_as_the_batch_does(bandit):
    probes = _probes()
    every = bandit.values(BanditBatch.from_contexts(probes))  # every action of every context
    for i, ctx in enumerate(probes):
        assert (~ctx.eligible).any()
        values = bandit.expected_values(ctx)
        assert np.allclose(values[ctx.eligible], every[i, ctx.eligible], atol=1e-6)
        assert np.all(values[~ctx.eligible] == 0.0)  # not scored


def test_distributions_and_values_together_equal_them_apart(bandit):
    probes = _probes()
    batch = BanditBatch.from_contexts(probes)
    dists, values = bandit.distributions_and_values(batch)
    assert np.allclose(dists, bandit.action_distributions(batch))
    for i, ctx in enumerate(probes):
        dist, value = bandit.distribution_and_values(ctx)
        assert np.allclose(dist, bandit.action_distribution(ctx)) and np.allclose(dist, dists[i])
        assert np.allclose(value, bandit.expected_values(ctx)) and np.allclose(value, values[i])


def test_a_context_that_allows_one_action_gets_it_for_certain_and_its_value(bandit):
    rng = np.random.default_rng(11)
    only = np.zeros(len(SPACE), dtype=bool)
    only[0] = True
    probes = [make_context(rng, eligible=only) for _ in range(4)]
    batch = BanditBatch.from_contexts(probes)
    dists, values = bandit.distributions_and_values(batch)
    expected = np.zeros((len(probes), len(SPACE)))
    expected[:, 0] = 1.0
    assert np.array_equal(dists, expected)
    assert np.array_equal(bandit.action_distributions(batch), expected)
    every = bandit.values(batch)  # every action scored: the same value for doing nothing
    assert np.allclose(values[:, 0], every[:, 0], atol=1e-6) and np.all(values[:, 1:] == 0.0)
    for i, ctx in enumerate(probes):
        dist, value = bandit.distribution_and_values(ctx)
        assert np.array_equal(dist, expected[i]) and np.array_equal(value, values[i])


@pytest.mark.parametrize("exploration", ["squarecb", "epsilon"])
def test_one_parse_serves_both_models_exactly(small_log, exploration):
    from models.encoding import vw_context_lines
    from models.vw_bandit import _predict

    fitted = VWBandit(exploration=exploration, seed=2).fit(small_log)
    models = [fitted.explorer_, fitted.valuer_]
    for ctx in _probes(8, seed=3):
        text = "\n".join(vw_context_lines(ctx, fitted.spec_)[0])
        apart = [_predict([model], text)[0] for model in models]
        assert _predict(models, text) == apart
        assert apart[0] != apart[1]  # a distribution and costs: two different answers


def test_epsilon_exploration_spreads_epsilon(small_log):
    bandit = VWBandit(exploration="epsilon", epsilon=0.2).fit(small_log)
    ctx = _probes(1)[0]
    dist = bandit.action_distribution(ctx)
    k = int(ctx.eligible.sum())
    assert np.isclose(np.sort(dist[ctx.eligible])[0], 0.2 / k, atol=1e-5)
    assert np.isclose(dist.max(), 1 - 0.2 + 0.2 / k, atol=1e-5)


def test_under_epsilon_greedy_the_explorer_favours_the_valuers_best_action(small_log):
    # both learn the same importance-weighted regression: the values explain the choice
    bandit = VWBandit(exploration="epsilon", epsilon=0.2).fit(small_log)
    for ctx in _probes(20, seed=11):
        dist, values = bandit.distribution_and_values(ctx)
        allowed = np.flatnonzero(ctx.eligible)
        assert int(np.argmax(dist)) == int(allowed[np.argmax(values[allowed])])


def test_save_load_restores_predictions_and_learning_state(small_log, tmp_path):
    bandit = VWBandit(seed=2).fit(small_log)
    path = bandit.save(tmp_path / "bandit.zip")
    loaded = VWBandit.load(path)
    assert loaded.get_params() == bandit.get_params()
    assert loaded.spec_ == bandit.spec_ and loaded.n_updates_ == 400
    probes = BanditBatch.from_contexts(_probes())
    assert np.array_equal(loaded.action_distributions(probes), bandit.action_distributions(probes))
    assert np.array_equal(loaded.values(probes), bandit.values(probes))
    more = make_logged_batch(np.random.default_rng(6), 50)
    bandit.partial_fit(more)
    loaded.partial_fit(more)
    assert np.array_equal(loaded.values(probes), bandit.values(probes))
    assert np.array_equal(loaded.action_distributions(probes), bandit.action_distributions(probes))


def test_online_rewards_move_the_model_towards_the_rewarded_action(small_log, tmp_path):
    bandit = VWBandit.load(VWBandit(seed=3).fit(small_log).save(tmp_path / "b.zip"))
    ctx = _probes(1, seed=12)[0]
    a = int(np.flatnonzero(ctx.eligible)[-1])
    value_before = bandit.expected_values(ctx)[a]
    prob_before = bandit.action_distribution(ctx)[a]
    for _ in range(30):
        bandit.learn_one(ctx, SPACE[a], reward=1.0, pscore=0.2)
    assert bandit.expected_values(ctx)[a] > value_before + 0.2
    assert bandit.action_distribution(ctx)[a] > prob_before
    assert bandit.n_updates_ == 430


def test_pickle_round_trip(small_log):
    bandit = VWBandit(exploration="epsilon", epsilon=0.1).fit(small_log)
    again = pickle.loads(pickle.dumps(bandit))
    probes = BanditBatch.from_contexts(_probes())
    assert np.array_equal(again.action_distributions(probes), bandit.action_distributions(probes))
    assert np.array_equal(again.values(probes), bandit.values(probes))


def test_partial_fit_starts_a_model_and_unfitted_bandits_refuse(small_log):
    with pytest.raises(NotFittedError):
        VWBandit().action_distribution(_probes(1)[0])
    bandit = VWBandit().partial_fit(small_log.select(np.arange(20)))
    assert bandit.n_updates_ == 20
    validate_distribution(bandit.action_distribution(small_log.context(0)), small_log.eligible[0])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"exploration": "thompson"}, "exploration must be one of"),
        ({"interactions": ("cz",)}, "interaction 'cz' is not a pair"),
        ({"exploration": "epsilon", "epsilon": 1.5}, "epsilon must lie in"),
        ({"passes": 0}, "passes must be at least 1"),
    ],
)
def test_bad_settings_are_rejected(small_log, params, message):
    with pytest.raises(InvalidInput, match=message):
        VWBandit(**params).fit(small_log)


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "junk.zip"
    path.write_bytes(b"not a zip")
    with pytest.raises(InvalidInput, match="is not a saved VW bandit"):
        VWBandit.load(path)


def test_fitting_in_two_processes_gives_the_serial_models(small_log, monkeypatch):
    """The valuer learnt in a forked process equals the one learnt beside the explorer."""
    serial = VWBandit(exploration="epsilon", epsilon=0.1, passes=2, seed=4).fit(small_log)
    used: list[bool] = []
    original = VWBandit._fit_side_by_side

    def spy(self, batch):
        used.append(original(self, batch))
        return used[-1]

    monkeypatch.setattr("models.vw_bandit._side_by_side", lambda rows: True)
    monkeypatch.setattr(VWBandit, "_fit_side_by_side", spy)
    forked = VWBandit(exploration="epsilon", epsilon=0.1, passes=2, seed=4).fit(small_log)
    assert used == [True]
    assert forked.n_updates_ == serial.n_updates_ == 800
    probes = BanditBatch.from_contexts(_probes())
    assert np.array_equal(forked.values(probes), serial.values(probes))
    assert np.array_equal(forked.action_distributions(probes), serial.action_distributions(probes))
    more = make_logged_batch(np.random.default_rng(6), 50)
    serial.partial_fit(more)
    forked.partial_fit(more)
    assert np.array_equal(forked.values(probes), serial.values(probes))


def test_a_failed_child_falls_back_to_fitting_in_one_process(small_log, monkeypatch):
    def crash(*_args):
        raise SystemExit(3)

    serial = VWBandit(exploration="epsilon", epsilon=0.1, seed=4).fit(small_log)
    monkeypatch.setattr("models.vw_bandit._side_by_side", lambda rows: True)
    monkeypatch.setattr("models.vw_bandit._fit_valuer", crash)
    fallback = VWBandit(exploration="epsilon", epsilon=0.1, seed=4).fit(small_log)
    probes = BanditBatch.from_contexts(_probes())
    assert fallback.n_updates_ == 400
    assert np.array_equal(fallback.values(probes), serial.values(probes))
    assert np.array_equal(
        fallback.action_distributions(probes), serial.action_distributions(probes)
    )
